//! The NMR client: the static registration data and the three client callbacks, each a
//! translation into the core ([`KernelClient::attach_provider`], [`BindingRef::detach`],
//! [`BindingRef::cleanup`]).
//!
//! The characteristics, NPI id and module id are statics: NMR reads them for as long as the
//! client is registered
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_registration_instance>).

use core::ptr;

use wdk_sys::{HANDLE, NTSTATUS, PVOID, STATUS_SUCCESS};

use super::{
    globals::{KernelClient, WSKECHO_GLOBALS},
    platform::KernelPlatform,
    provider::WskProvider,
    timer::BindingTimer,
};
use crate::ffi::{
    netioddk::{
        MIT_GUID, NPI_CLIENT_CHARACTERISTICS, NPI_CLIENT_CHARACTERISTICS_SIZE, NPI_MODULEID,
        NPI_MODULEID_SIZE, NPI_MODULEID_u, NPI_REGISTRATION_INSTANCE,
        NPI_REGISTRATION_INSTANCE_SIZE, NPIID, NmrClientAttachProvider,
    },
    wsk::{
        MAKE_WSK_VERSION, NPI_WSK_INTERFACE_ID, WSK_CLIENT_DISPATCH, WSK_PROVIDER_CHARACTERISTICS,
    },
};
use wsk_client::{binding::BindingRef, wsk_version::WskVersionRange};
use wsk_primitives::{log_error, status::NtStatus};

/// The NPI wskecho is a client of.
static NPI_ID: NPIID = NPI_WSK_INTERFACE_ID;

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
pub static CLIENT_CHARACTERISTICS: NPI_CLIENT_CHARACTERISTICS = NPI_CLIENT_CHARACTERISTICS {
    Version: 0,
    Length: NPI_CLIENT_CHARACTERISTICS_SIZE,
    ClientAttachProvider: Some(client_attach_provider),
    ClientDetachProvider: Some(client_detach_provider),
    ClientCleanupBindingContext: Some(client_cleanup_binding_context),
    ClientRegistrationInstance: NPI_REGISTRATION_INSTANCE {
        Version: 0,
        Size: NPI_REGISTRATION_INSTANCE_SIZE,
        NpiId: &raw const NPI_ID,
        ModuleId: &raw const MODULE_ID,
        Number: 0,
        NpiSpecificCharacteristics: ptr::null(),
    },
};

/// The client dispatch handed to WSK: version 1.0, no client event callback.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_client_dispatch>
static CLIENT_DISPATCH: WSK_CLIENT_DISPATCH = WSK_CLIENT_DISPATCH {
    Version: MAKE_WSK_VERSION(1, 0),
    Reserved: 0,
    WskClientEvent: None,
};

/// `ClientAttachProvider`, `PASSIVE_LEVEL`
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_attach_provider_fn>).
///
/// Reads the provider's WSK version range and lets the core decide; the core calls back with
/// a fresh binding, and the closure attaches with `NmrClientAttachProvider`. Once that call
/// succeeded the closure always returns the provider (the binding is attached and NMR will
/// detach it), so a NULL dispatch table is only noticed at the first call, which then fails.
unsafe extern "system" fn client_attach_provider(
    nmr_binding: HANDLE,
    client_context: PVOID,
    provider_registration: *const NPI_REGISTRATION_INSTANCE,
) -> NTSTATUS {
    // SAFETY: the client context given to NmrRegisterClient is the global client, which lives
    // until Unload has waited for every binding.
    let Some(client) = (unsafe { client_context.cast::<KernelClient>().as_ref() }) else {
        // The page allows STATUS_SUCCESS, STATUS_NOINTERFACE or another error; the NMR then
        // offers this provider to no binding of ours.
        return NtStatus::NOINTERFACE.0;
    };
    // SAFETY: NMR passes the provider's registration instance, valid during the call.
    let Some(registration) = (unsafe { provider_registration.as_ref() }) else {
        return NtStatus::NOINTERFACE.0;
    };
    let characteristics = registration
        .NpiSpecificCharacteristics
        .cast::<WSK_PROVIDER_CHARACTERISTICS>();
    // SAFETY: for the WSK NPI the provider's specific characteristics are a
    // WSK_PROVIDER_CHARACTERISTICS, valid during the call (or NULL).
    let Some(characteristics) = (unsafe { characteristics.as_ref() }) else {
        return NtStatus::NOINTERFACE.0;
    };
    let versions = WskVersionRange {
        highest: characteristics.HighestVersion,
        lowest: characteristics.LowestVersion,
    };
    // The device the completion routines are set on: set before NmrRegisterClient, cleared
    // only after the deregistration completed (entry.rs, pnp.rs).
    let Some(completion_device) = WSKECHO_GLOBALS.completion_device() else {
        log_error!(&KernelPlatform, "attach: no completion device");
        return NtStatus::DEVICE_NOT_READY.0;
    };
    let attach = |binding: BindingRef<WskProvider>| {
        // Allocated before the attach, so that a failure leaves nothing for NMR to detach.
        let Some(timer) = BindingTimer::allocate() else {
            log_error!(
                &KernelPlatform,
                "attach: the binding's timer: {}",
                NtStatus::INSUFFICIENT_RESOURCES
            );
            return Err(NtStatus::INSUFFICIENT_RESOURCES);
        };
        let mut provider_context: PVOID = ptr::null_mut();
        let mut provider_dispatch: *const core::ffi::c_void = ptr::null();
        // SAFETY: PASSIVE_LEVEL inside ClientAttachProvider with NMR's binding handle; the
        // client dispatch is static; the binding context stays valid until cleanup.
        let status = unsafe {
            NmrClientAttachProvider(
                nmr_binding,
                binding.as_context(),
                (&raw const CLIENT_DISPATCH).cast(),
                &raw mut provider_context,
                &raw mut provider_dispatch,
            )
        };
        // Its page names STATUS_SUCCESS as the one success
        // (https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrclientattachprovider).
        if status != STATUS_SUCCESS {
            log_error!(
                &KernelPlatform,
                "attach: NmrClientAttachProvider failed with {}",
                NtStatus(status)
            );
            return Err(NtStatus(status));
        }
        Ok(WskProvider::new(
            provider_context,
            provider_dispatch,
            nmr_binding,
            completion_device,
            timer,
        ))
    };
    // SAFETY: `client` is the static global client, which never moves and outlives every
    // binding (Unload waits for live_bindings() == 0 before dropping it).
    unsafe { client.attach_provider(versions, attach) }.0
}

/// `ClientDetachProvider`, IRQL <= `DISPATCH_LEVEL`
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_detach_provider_fn>).
/// Returns the core's `STATUS_SUCCESS` or `STATUS_PENDING`.
unsafe extern "system" fn client_detach_provider(client_binding_context: PVOID) -> NTSTATUS {
    // SAFETY: NMR passes back the binding context given to NmrClientAttachProvider; it stays
    // valid until the cleanup callback.
    let binding = unsafe { BindingRef::<WskProvider>::from_context(client_binding_context) };
    // SAFETY: NMR calls detach exactly once per binding.
    unsafe { binding.detach() }.0
}

/// `ClientCleanupBindingContext`, IRQL <= `DISPATCH_LEVEL`
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_cleanup_binding_context_fn>).
/// Frees the binding; when it was the last one, wakes `Unload` (the last action here).
unsafe extern "system" fn client_cleanup_binding_context(client_binding_context: PVOID) {
    // SAFETY: as in detach; NMR calls cleanup once, after both sides detached.
    let binding = unsafe { BindingRef::<WskProvider>::from_context(client_binding_context) };
    // SAFETY: called once per binding, after the detach completed.
    if unsafe { binding.cleanup() } {
        WSKECHO_GLOBALS.signal_bindings_gone();
    }
}
