//! Network Module Registrar (NMR), client side: `netioddk.h` and the `netiodef.h` types it uses.
//!
//! Reference: <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/> and
//! "Network Module Registrar" in the network driver design guide. The functions are exported by
//! `netio.sys`; the build links the import library `netio.lib`.

use core::{
    ffi::c_void,
    mem::{align_of, offset_of, size_of},
};

use wdk_sys::{GUID, HANDLE, LUID, NTSTATUS, PVOID, ULONG, USHORT};

/// `NPIID`: the identifier of a Network Programming Interface (`typedef GUID NPIID`).
///
/// Defined on <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_registration_instance>.
pub type NPIID = GUID;

/// `NPI_MODULEID_TYPE`, a C enum (`int`): how an [`NPI_MODULEID`] identifies its module.
///
/// <https://learn.microsoft.com/previous-versions/windows/hardware/drivers/ff568813(v=vs.85)>
pub type NPI_MODULEID_TYPE = i32;

/// `sizeof(NPI_MODULEID)` on x64, for its `Length` member (pinned below).
pub const NPI_MODULEID_SIZE: USHORT = 24;
/// `sizeof(NPI_REGISTRATION_INSTANCE)` on x64, for its `Size` member (pinned below).
pub const NPI_REGISTRATION_INSTANCE_SIZE: USHORT = 40;
/// `sizeof(NPI_CLIENT_CHARACTERISTICS)` on x64, for its `Length` member (pinned below).
pub const NPI_CLIENT_CHARACTERISTICS_SIZE: USHORT = 72;

/// `MIT_GUID`: the module is identified by [`NPI_MODULEID_u::Guid`].
pub const MIT_GUID: NPI_MODULEID_TYPE = 1;

/// The anonymous union of [`NPI_MODULEID`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union NPI_MODULEID_u {
    /// Valid when `Type` is [`MIT_GUID`].
    pub Guid: GUID,
    /// Valid when `Type` is `MIT_IF_LUID` (not used by the adapter).
    pub IfLuid: LUID,
}

/// `NPI_MODULEID`: identifies a network module (`netiodef.h`).
///
/// <https://learn.microsoft.com/previous-versions/windows/hardware/drivers/ff568813(v=vs.85)>:
/// `{ USHORT Length; NPI_MODULEID_TYPE Type; union { GUID Guid; LUID IfLuid; }; }`. It must
/// stay valid and resident while the module is registered.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NPI_MODULEID {
    /// Size of this structure in bytes.
    pub Length: USHORT,
    /// [`MIT_GUID`] for a driver's GUID module id.
    pub Type: NPI_MODULEID_TYPE,
    /// The identifier selected by `Type`.
    pub u: NPI_MODULEID_u,
}

/// `NPI_REGISTRATION_INSTANCE`: a module's registration data.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_registration_instance>.
/// `NpiId`, `ModuleId` and `NpiSpecificCharacteristics` must stay valid and resident while the
/// module is registered.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NPI_REGISTRATION_INSTANCE {
    /// NMR version: must be 0.
    pub Version: USHORT,
    /// `sizeof(NPI_REGISTRATION_INSTANCE)`.
    pub Size: USHORT,
    /// The NPI the module registers for (`PNPIID`, pointer to const).
    pub NpiId: *const NPIID,
    /// The module's identity (`PNPI_MODULEID`, pointer to const).
    pub ModuleId: *const NPI_MODULEID,
    /// Implementation number of the NPI; 0 when there is one implementation.
    pub Number: ULONG,
    /// NPI-specific characteristics; for a provider of the WSK NPI a
    /// `WSK_PROVIDER_CHARACTERISTICS`; `NULL` for a WSK client.
    pub NpiSpecificCharacteristics: *const c_void,
}

/// `NPI_CLIENT_ATTACH_PROVIDER_FN` (`ClientAttachProvider`), called at `PASSIVE_LEVEL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_attach_provider_fn>
pub type NPI_CLIENT_ATTACH_PROVIDER_FN = unsafe extern "system" fn(
    NmrBindingHandle: HANDLE,
    ClientContext: PVOID,
    ProviderRegistrationInstance: *const NPI_REGISTRATION_INSTANCE,
) -> NTSTATUS;

/// `NPI_CLIENT_DETACH_PROVIDER_FN` (`ClientDetachProvider`), called at IRQL <= `DISPATCH_LEVEL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_detach_provider_fn>
pub type NPI_CLIENT_DETACH_PROVIDER_FN =
    unsafe extern "system" fn(ClientBindingContext: PVOID) -> NTSTATUS;

/// `NPI_CLIENT_CLEANUP_BINDING_CONTEXT_FN` (`ClientCleanupBindingContext`), called at IRQL <=
/// `DISPATCH_LEVEL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_cleanup_binding_context_fn>
pub type NPI_CLIENT_CLEANUP_BINDING_CONTEXT_FN =
    unsafe extern "system" fn(ClientBindingContext: PVOID);

/// `NPI_CLIENT_CHARACTERISTICS`: what `NmrRegisterClient` registers.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_client_characteristics>.
/// Must stay valid and resident while the client is registered.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NPI_CLIENT_CHARACTERISTICS {
    /// NMR version: must be 0.
    pub Version: USHORT,
    /// `sizeof(NPI_CLIENT_CHARACTERISTICS)`.
    pub Length: USHORT,
    /// Required.
    pub ClientAttachProvider: Option<NPI_CLIENT_ATTACH_PROVIDER_FN>,
    /// Required.
    pub ClientDetachProvider: Option<NPI_CLIENT_DETACH_PROVIDER_FN>,
    /// Optional (the adapter frees its binding context here).
    pub ClientCleanupBindingContext: Option<NPI_CLIENT_CLEANUP_BINDING_CONTEXT_FN>,
    /// The client's registration data.
    pub ClientRegistrationInstance: NPI_REGISTRATION_INSTANCE,
}

// SAFETY: the raw pointers inside point to immutable statics (the NPI id, the module id); the
// structure itself is only ever read (by NMR) once built, so sharing it between threads is sound.
unsafe impl Sync for NPI_CLIENT_CHARACTERISTICS {}

#[link(name = "netio")]
unsafe extern "system" {
    /// `NmrRegisterClient` (`PASSIVE_LEVEL`). NMR may call `ClientAttachProvider` before it
    /// returns.
    ///
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrregisterclient>
    pub fn NmrRegisterClient(
        ClientCharacteristics: *const NPI_CLIENT_CHARACTERISTICS,
        ClientContext: PVOID,
        NmrClientHandle: *mut HANDLE,
    ) -> NTSTATUS;

    /// `NmrDeregisterClient` (IRQL <= `DISPATCH_LEVEL`); returns `STATUS_PENDING`, or an error
    /// (then no binding is detached).
    ///
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrderegisterclient>
    pub fn NmrDeregisterClient(NmrClientHandle: HANDLE) -> NTSTATUS;

    /// `NmrWaitForClientDeregisterComplete` (IRQL < `DISPATCH_LEVEL`): blocks until every
    /// binding of the client has detached.
    ///
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrwaitforclientderegistercomplete>
    pub fn NmrWaitForClientDeregisterComplete(NmrClientHandle: HANDLE) -> NTSTATUS;

    /// `NmrClientAttachProvider` (`PASSIVE_LEVEL`, from `ClientAttachProvider`). For WSK the
    /// provider binding context is the `PWSK_CLIENT` and the provider dispatch a
    /// `const WSK_PROVIDER_DISPATCH*`.
    ///
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrclientattachprovider>
    pub fn NmrClientAttachProvider(
        NmrBindingHandle: HANDLE,
        ClientBindingContext: PVOID,
        ClientDispatch: *const c_void,
        ProviderBindingContext: *mut PVOID,
        ProviderDispatch: *mut *const c_void,
    ) -> NTSTATUS;

    /// `NmrClientDetachProviderComplete` (IRQL <= `DISPATCH_LEVEL`): completes a detach for which
    /// `ClientDetachProvider` returned `STATUS_PENDING`.
    ///
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrclientdetachprovidercomplete>
    pub fn NmrClientDetachProviderComplete(NmrBindingHandle: HANDLE);
}

// x64 layouts (MSVC rules: natural alignment, pointers 8 bytes).
const _: () = assert!(size_of::<NPIID>() == 16);
const _: () = assert!(size_of::<NPI_MODULEID_u>() == 16 && align_of::<NPI_MODULEID_u>() == 4);
const _: () = assert!(size_of::<NPI_MODULEID>() == NPI_MODULEID_SIZE as usize);
const _: () = assert!(offset_of!(NPI_MODULEID, Length) == 0);
const _: () = assert!(offset_of!(NPI_MODULEID, Type) == 4);
const _: () = assert!(offset_of!(NPI_MODULEID, u) == 8);
const _: () =
    assert!(size_of::<NPI_REGISTRATION_INSTANCE>() == NPI_REGISTRATION_INSTANCE_SIZE as usize);
const _: () = assert!(offset_of!(NPI_REGISTRATION_INSTANCE, Version) == 0);
const _: () = assert!(offset_of!(NPI_REGISTRATION_INSTANCE, Size) == 2);
const _: () = assert!(offset_of!(NPI_REGISTRATION_INSTANCE, NpiId) == 8);
const _: () = assert!(offset_of!(NPI_REGISTRATION_INSTANCE, ModuleId) == 16);
const _: () = assert!(offset_of!(NPI_REGISTRATION_INSTANCE, Number) == 24);
const _: () = assert!(offset_of!(NPI_REGISTRATION_INSTANCE, NpiSpecificCharacteristics) == 32);
const _: () =
    assert!(size_of::<NPI_CLIENT_CHARACTERISTICS>() == NPI_CLIENT_CHARACTERISTICS_SIZE as usize);
const _: () = assert!(offset_of!(NPI_CLIENT_CHARACTERISTICS, Version) == 0);
const _: () = assert!(offset_of!(NPI_CLIENT_CHARACTERISTICS, Length) == 2);
const _: () = assert!(offset_of!(NPI_CLIENT_CHARACTERISTICS, ClientAttachProvider) == 8);
const _: () = assert!(offset_of!(NPI_CLIENT_CHARACTERISTICS, ClientDetachProvider) == 16);
const _: () = assert!(offset_of!(NPI_CLIENT_CHARACTERISTICS, ClientCleanupBindingContext) == 24);
const _: () = assert!(offset_of!(NPI_CLIENT_CHARACTERISTICS, ClientRegistrationInstance) == 32);
