//! wskecho as an NMR client: its module id, its registration, and the three client callbacks,
//! each handing its arguments and the driver's globals to `wsk_kernel::nmr`.
//!
//! The characteristics and the module id are statics: NMR reads them for as long as the client
//! is registered
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_registration_instance>).

use wdk_sys::{HANDLE, NTSTATUS, PVOID};

use super::globals::WSKECHO_GLOBALS;
use wsk_kernel::{
    ffi::netioddk::{
        MIT_GUID, NPI_CLIENT_CHARACTERISTICS, NPI_MODULEID, NPI_MODULEID_SIZE, NPI_MODULEID_u,
        NPI_REGISTRATION_INSTANCE,
    },
    nmr,
};

/// wskecho's module id: `{B5067694-00DA-40FD-AB48-5554A69E1648}` (generated for this driver).
static MODULE_ID: NPI_MODULEID = NPI_MODULEID {
    Length: NPI_MODULEID_SIZE,
    Type: MIT_GUID,
    u: NPI_MODULEID_u {
        Guid: wdk_sys::GUID {
            Data1: 0xB506_7694,
            Data2: 0x00DA,
            Data3: 0x40FD,
            Data4: [0xAB, 0x48, 0x55, 0x54, 0xA6, 0x9E, 0x16, 0x48],
        },
    },
};

/// The registration passed to `NmrRegisterClient`.
pub static CLIENT_CHARACTERISTICS: NPI_CLIENT_CHARACTERISTICS = nmr::client_characteristics(
    &MODULE_ID,
    client_attach_provider,
    client_detach_provider,
    client_cleanup_binding_context,
);

/// `ClientAttachProvider`, `PASSIVE_LEVEL`
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_attach_provider_fn>):
/// [`nmr::attach_provider`] with the driver's completion device and driver object.
unsafe extern "system" fn client_attach_provider(
    nmr_binding: HANDLE,
    client_context: PVOID,
    provider_registration: *const NPI_REGISTRATION_INSTANCE,
) -> NTSTATUS {
    // The completion device is set before NmrRegisterClient and cleared only after the
    // deregistration completed (entry.rs, pnp.rs).
    let objects = WSKECHO_GLOBALS.io_objects();
    // SAFETY: NMR's arguments; the client context given to NmrRegisterClient is the global
    // client, which never moves and outlives every binding (Unload waits for
    // live_bindings() == 0 before dropping it); the objects exist until the deregistration
    // completed.
    unsafe { nmr::attach_provider(nmr_binding, client_context, provider_registration, objects) }
}

/// `ClientDetachProvider`, IRQL <= `DISPATCH_LEVEL`
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_detach_provider_fn>):
/// [`nmr::detach_provider`], `STATUS_SUCCESS` or `STATUS_PENDING`.
unsafe extern "system" fn client_detach_provider(client_binding_context: PVOID) -> NTSTATUS {
    // SAFETY: NMR's argument.
    unsafe { nmr::detach_provider(client_binding_context) }
}

/// `ClientCleanupBindingContext`, IRQL <= `DISPATCH_LEVEL`
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_cleanup_binding_context_fn>).
/// Frees the binding; when it was the last one, wakes `Unload` (the last action here).
unsafe extern "system" fn client_cleanup_binding_context(client_binding_context: PVOID) {
    // SAFETY: NMR's argument.
    if unsafe { nmr::cleanup_binding_context(client_binding_context) } {
        WSKECHO_GLOBALS.signal_bindings_gone();
    }
}
