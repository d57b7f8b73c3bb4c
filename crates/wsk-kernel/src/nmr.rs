//! The NMR client side of WSK: the registration and the three client callbacks' work.
//!
//! The registration is for `NmrRegisterClient`; each callback's work is a translation into the
//! client ([`KernelClient::attach_provider`], [`BindingRef::detach`], [`BindingRef::cleanup`]).
//!
//! The driver defines the three `extern "system"` callbacks (they need its globals: the devices
//! its I/O is tied to, what `Unload` waits on) and its module id; each callback calls the
//! function of the same name here. The registration data must be statics: NMR reads them for as
//! long as the client is registered
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/ns-netioddk-_npi_registration_instance>).

use core::ptr;

use wdk_sys::{HANDLE, NTSTATUS, PVOID, STATUS_SUCCESS};

use crate::{
    ffi::{
        netioddk::{
            NPI_CLIENT_ATTACH_PROVIDER_FN, NPI_CLIENT_CHARACTERISTICS,
            NPI_CLIENT_CHARACTERISTICS_SIZE, NPI_CLIENT_CLEANUP_BINDING_CONTEXT_FN,
            NPI_CLIENT_DETACH_PROVIDER_FN, NPI_MODULEID, NPI_REGISTRATION_INSTANCE,
            NPI_REGISTRATION_INSTANCE_SIZE, NPIID, NmrClientAttachProvider,
        },
        wsk::{
            MAKE_WSK_VERSION, NPI_WSK_INTERFACE_ID, WSK_CLIENT_DISPATCH,
            WSK_PROVIDER_CHARACTERISTICS,
        },
    },
    platform::KernelPlatform,
    provider::{IoObjects, WskProvider},
    timer::BindingTimer,
};
use wsk_client::{binding::BindingRef, client::Client, wsk_version::WskVersionRange};
use wsk_primitives::{log_error, status::NtStatus};

/// The client over the kernel's WSK provider.
pub type KernelClient = Client<WskProvider>;

/// The NPI a WSK client is a client of.
static NPI_ID: NPIID = NPI_WSK_INTERFACE_ID;

/// The client dispatch handed to WSK: version 1.0, no client event callback.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_client_dispatch>
static CLIENT_DISPATCH: WSK_CLIENT_DISPATCH = WSK_CLIENT_DISPATCH {
    Version: MAKE_WSK_VERSION(1, 0),
    Reserved: 0,
    WskClientEvent: None,
};

/// The registration of a WSK client whose module id is `module_id`, for a `static` the driver
/// passes to `NmrRegisterClient`, with the driver's three callbacks.
#[must_use]
pub const fn client_characteristics(
    module_id: &'static NPI_MODULEID,
    attach: NPI_CLIENT_ATTACH_PROVIDER_FN,
    detach: NPI_CLIENT_DETACH_PROVIDER_FN,
    cleanup: NPI_CLIENT_CLEANUP_BINDING_CONTEXT_FN,
) -> NPI_CLIENT_CHARACTERISTICS {
    NPI_CLIENT_CHARACTERISTICS {
        Version: 0,
        Length: NPI_CLIENT_CHARACTERISTICS_SIZE,
        ClientAttachProvider: Some(attach),
        ClientDetachProvider: Some(detach),
        ClientCleanupBindingContext: Some(cleanup),
        ClientRegistrationInstance: NPI_REGISTRATION_INSTANCE {
            Version: 0,
            Size: NPI_REGISTRATION_INSTANCE_SIZE,
            NpiId: &raw const NPI_ID,
            ModuleId: module_id,
            Number: 0,
            NpiSpecificCharacteristics: ptr::null(),
        },
    }
}

/// `ClientAttachProvider`'s work, at `PASSIVE_LEVEL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_attach_provider_fn>.
/// `objects` are the driver's (`None`: it has none now, and the attach fails with
/// `STATUS_DEVICE_NOT_READY`).
///
/// Reads the provider's WSK version range and lets the client decide; the client calls back
/// with a fresh binding, which is attached with `NmrClientAttachProvider`. Once that call
/// succeeded the provider is always returned (the binding is attached and NMR will detach it),
/// so a NULL dispatch table is only noticed at the first call, which then fails.
///
/// # Safety
/// Called from `ClientAttachProvider` with its arguments, and the driver keeps these
/// obligations:
/// * the client context given to `NmrRegisterClient` is a [`KernelClient`] that does not move
///   or drop while a binding is live ([`KernelClient::live_bindings`]);
/// * `objects` ([`IoObjects`]) exist before `NmrRegisterClient` (an attach may run inside that
///   call; without them it fails with `STATUS_DEVICE_NOT_READY` and NMR does not offer that
///   provider again) and until the deregistration completed and `live_bindings()` is 0: only
///   then may the driver delete the completion device;
/// * before its image may go (`Unload`, or a failing `DriverEntry`), after the last binding was
///   freed, the driver calls `KeFlushQueuedDpcs`, so that no binding timer's DPC routine is
///   still returning
///   (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-keflushqueueddpcs>).
pub unsafe fn attach_provider(
    nmr_binding: HANDLE,
    client_context: PVOID,
    provider_registration: *const NPI_REGISTRATION_INSTANCE,
    objects: Option<IoObjects>,
) -> NTSTATUS {
    // SAFETY: the client context given to NmrRegisterClient is a live client (caller).
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
    let Some(objects) = objects else {
        log_error!(
            &KernelPlatform,
            "attach: no completion device or driver object"
        );
        return NtStatus::DEVICE_NOT_READY.0;
    };
    let attach = |binding: BindingRef<WskProvider>| {
        // Allocated before the attach, so that a failure leaves nothing for NMR to detach.
        let Some(timer) = BindingTimer::allocate(objects.driver) else {
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
            objects,
            timer,
        ))
    };
    // SAFETY: the client does not move or drop while a binding is live (caller).
    unsafe { client.attach_provider(versions, attach) }.0
}

/// `ClientDetachProvider`'s work, at IRQL <= `DISPATCH_LEVEL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_detach_provider_fn>.
/// Returns the client's `STATUS_SUCCESS` or `STATUS_PENDING`.
///
/// # Safety
/// Called from `ClientDetachProvider` with its argument.
pub unsafe fn detach_provider(client_binding_context: PVOID) -> NTSTATUS {
    // SAFETY: NMR passes back the binding context given to NmrClientAttachProvider; it stays
    // valid until the cleanup callback.
    let binding = unsafe { BindingRef::<WskProvider>::from_context(client_binding_context) };
    // SAFETY: NMR calls detach exactly once per binding.
    unsafe { binding.detach() }.0
}

/// `ClientCleanupBindingContext`'s work, at IRQL <= `DISPATCH_LEVEL`: frees the binding.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nc-netioddk-npi_client_cleanup_binding_context_fn>.
/// `true` when it was the client's last binding (the driver then wakes a waiting `Unload`, as
/// the last action of its callback).
///
/// # Safety
/// Called from `ClientCleanupBindingContext` with its argument.
#[must_use]
pub unsafe fn cleanup_binding_context(client_binding_context: PVOID) -> bool {
    // SAFETY: as in detach; NMR calls cleanup once, after both sides detached.
    let binding = unsafe { BindingRef::<WskProvider>::from_context(client_binding_context) };
    // SAFETY: called once per binding, after the detach completed.
    unsafe { binding.cleanup() }
}
