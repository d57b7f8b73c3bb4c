//! The driver's global state: the core [`Client`] (in static, non-paged storage, so it never
//! moves while bindings exist), the NMR client handle, and the event `Unload` waits on until
//! every binding has been freed.
//!
//! `WinDbg`: the whole state is the symbol `wskecho!WSKECHO_GLOBALS`; the counters are
//! `dx wskecho!WSKECHO_GLOBALS.client.value.value.value.stats` (the path walks `UnsafeCell`,
//! `MaybeUninit`, `ManuallyDrop` as the PDB records them; `Stats` is `#[repr(C)]`: plain
//! 64-bit counters in order; docs/windbg.md).

use core::{
    cell::UnsafeCell,
    ffi::c_void,
    mem::MaybeUninit,
    ptr::{self, NonNull},
    sync::atomic::{AtomicBool, AtomicPtr, Ordering},
};

use wdk_sys::{
    _EVENT_TYPE::SynchronizationEvent,
    _KWAIT_REASON::Executive,
    _MODE::KernelMode,
    DEVICE_OBJECT, DRIVER_OBJECT, HANDLE, KEVENT,
    ntddk::{KeInitializeEvent, KeSetEvent, KeWaitForSingleObject},
};

use wsk_client::config::Config;
use wsk_kernel::{nmr::KernelClient, platform::KernelPlatform, provider::IoObjects};
use wskecho_echo::ECHO;

/// `KernelMode` as the `KPROCESSOR_MODE` (`CCHAR`) that `KeWaitForSingleObject` takes.
const KERNEL_MODE: i8 = 0;
const _: () = assert!(KernelMode == 0);

/// Everything global, in one named static.
pub struct DriverGlobals {
    /// The core client; initialised in `DriverEntry`, dropped in `Unload` (or when
    /// `DriverEntry` fails).
    client: UnsafeCell<MaybeUninit<KernelClient>>,
    /// Whether `client` is initialised.
    ready: AtomicBool,
    /// The handle from `NmrRegisterClient`.
    nmr_client: AtomicPtr<c_void>,
    /// The driver object (`DriverEntry`'s), which the sockets' work items are initialised on.
    driver: AtomicPtr<DRIVER_OBJECT>,
    /// Installed as a Plug and Play device: the client registers when a `Root\wskecho` device
    /// starts (`Parameters\PnpDevice`).
    pnp_device: AtomicBool,
    /// As a Plug and Play device: the device whose start registered the client (NULL: none).
    owner: AtomicPtr<DEVICE_OBJECT>,
    /// The device object every IRP's completion routine is set on with
    /// `IoSetCompletionRoutineEx` while the client is registered: as a service the control
    /// device, as a Plug and Play device the owner FDO (NULL: none).
    completion_device: AtomicPtr<DEVICE_OBJECT>,
    /// Synchronization event set by the cleanup callback that frees the last binding.
    bindings_gone: UnsafeCell<KEVENT>,
}

// SAFETY: `client` is written only at PASSIVE_LEVEL in DriverEntry before anything can read it
// (published by `ready`, Release/Acquire) and dropped in Unload after every reader is gone; the
// Client itself is Sync. The KEVENT is only used through Ke* functions, which synchronise.
unsafe impl Sync for DriverGlobals {}

/// The driver's global state (non-paged: the image's data section).
#[unsafe(no_mangle)]
pub static WSKECHO_GLOBALS: DriverGlobals = DriverGlobals {
    client: UnsafeCell::new(MaybeUninit::uninit()),
    ready: AtomicBool::new(false),
    nmr_client: AtomicPtr::new(ptr::null_mut()),
    driver: AtomicPtr::new(ptr::null_mut()),
    pnp_device: AtomicBool::new(false),
    owner: AtomicPtr::new(ptr::null_mut()),
    completion_device: AtomicPtr::new(ptr::null_mut()),
    // SAFETY: KEVENT is plain data for which all-zero is a valid (not yet initialised) value;
    // KeInitializeEvent runs before any use.
    bindings_gone: UnsafeCell::new(unsafe { core::mem::zeroed() }),
};

impl DriverGlobals {
    /// Builds the client in its static storage with `config` and initialises the event.
    /// `PASSIVE_LEVEL`, from `DriverEntry` (`KeInitializeEvent`: any IRQL,
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-keinitializeevent>).
    ///
    /// The client is written in place ([`Client::init_in_place`]): the configuration is copied
    /// from the caller's (pool) builder straight into the static, never through a stack frame.
    ///
    /// # Safety
    /// Called once, before anything else uses the globals, with no concurrent access.
    pub unsafe fn init(&self, config: &Config) -> &KernelClient {
        // SAFETY: nobody else touches the event yet (caller).
        unsafe { KeInitializeEvent(self.bindings_gone.get(), SynchronizationEvent, 0) };
        // SAFETY: nobody else touches the client storage yet (caller), so this is the only
        // reference to it.
        let slot = unsafe { &mut *self.client.get() };
        let client = KernelClient::init_in_place(slot, config, ECHO, KernelPlatform);
        self.ready.store(true, Ordering::Release);
        client
    }

    /// The client, once initialised.
    pub fn client(&self) -> Option<&KernelClient> {
        if self.ready.load(Ordering::Acquire) {
            let storage = self.client.get().cast::<KernelClient>();
            // SAFETY: initialised (ready) and not dropped while anything can still call in;
            // `MaybeUninit<T>` has the layout of `T`.
            Some(unsafe { &*storage })
        } else {
            None
        }
    }

    /// Drops the client.
    ///
    /// # Safety
    /// No binding is live and nothing can call into the client any more (NMR deregistration
    /// complete, or `NmrRegisterClient` failed).
    pub unsafe fn destroy(&self) {
        if self.ready.swap(false, Ordering::AcqRel) {
            let storage = self.client.get().cast::<KernelClient>();
            // SAFETY: initialised and, per the caller, unused from now on.
            unsafe { ptr::drop_in_place(storage) };
        }
    }

    /// Remembers the driver object, before anything can create a socket (`DriverEntry`, before
    /// `NmrRegisterClient`). It stays valid until `Unload` returns, after every socket is gone.
    pub fn set_driver_object(&self, driver: *mut DRIVER_OBJECT) {
        self.driver.store(driver, Ordering::Release);
    }

    /// The driver object, once `DriverEntry` stored it.
    pub fn driver_object(&self) -> Option<NonNull<DRIVER_OBJECT>> {
        NonNull::new(self.driver.load(Ordering::Acquire))
    }

    /// Records how `DriverEntry` found the driver installed (`true`: as a Plug and Play device).
    pub fn set_pnp_device(&self, on: bool) {
        self.pnp_device.store(on, Ordering::Release);
    }

    /// Whether the client follows a `Root\wskecho` device (installed as a Plug and Play device).
    pub fn is_pnp_device(&self) -> bool {
        self.pnp_device.load(Ordering::Acquire)
    }

    /// As a Plug and Play device: makes `device` the owner of the registration if there is none.
    /// `true` if it is the owner now.
    pub fn claim_owner(&self, device: *mut DEVICE_OBJECT) -> bool {
        match self.owner.compare_exchange(
            ptr::null_mut(),
            device,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(current) => current == device,
        }
    }

    /// As a Plug and Play device: whether `device` owns the registration.
    pub fn is_owner(&self, device: *mut DEVICE_OBJECT) -> bool {
        self.owner.load(Ordering::Acquire) == device
    }

    /// As a Plug and Play device: gives the registration up if `device` owns it. `true` if it did.
    pub fn release_owner(&self, device: *mut DEVICE_OBJECT) -> bool {
        self.owner
            .compare_exchange(device, ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Sets (or, with NULL, clears) the device the completion routines are set on. Set before
    /// `NmrRegisterClient`, cleared only after the deregistration completed and no binding is
    /// live.
    pub fn set_completion_device(&self, device: *mut DEVICE_OBJECT) {
        self.completion_device.store(device, Ordering::Release);
    }

    /// The device the completion routines are set on, if any.
    pub fn completion_device(&self) -> Option<NonNull<DEVICE_OBJECT>> {
        NonNull::new(self.completion_device.load(Ordering::Acquire))
    }

    /// The objects a new binding's I/O is tied to (`None` while there is no completion
    /// device): the completion device, and the driver object for the work items.
    pub fn io_objects(&self) -> Option<IoObjects> {
        Some(IoObjects {
            completion_device: self.completion_device()?,
            driver: self.driver_object()?,
        })
    }

    /// Whether an NMR registration exists.
    pub fn has_nmr_client(&self) -> bool {
        !self.nmr_client.load(Ordering::Acquire).is_null()
    }

    /// Remembers the NMR client handle.
    pub fn set_nmr_client(&self, handle: HANDLE) {
        self.nmr_client.store(handle, Ordering::Release);
    }

    /// Takes the NMR client handle (NULL if none).
    pub fn take_nmr_client(&self) -> HANDLE {
        self.nmr_client.swap(ptr::null_mut(), Ordering::AcqRel)
    }

    /// Wakes `Unload`'s wait: the last binding was freed. IRQL <= `DISPATCH_LEVEL`
    /// (`KeSetEvent` with `Wait = FALSE`,
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-kesetevent>).
    pub fn signal_bindings_gone(&self) {
        // SAFETY: the event was initialised in `init`, before NMR could call any callback.
        unsafe { KeSetEvent(self.bindings_gone.get(), 0, 0) };
    }

    /// Blocks until no binding is live. `PASSIVE_LEVEL` (`KeWaitForSingleObject` without a
    /// timeout, <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-kewaitforsingleobject>).
    ///
    /// The event auto-resets; a stale signal only costs one more look at the count, and a
    /// signal between the look and the wait is kept by the event, so no wake-up is lost.
    pub fn wait_until_no_binding(&self, client: &KernelClient) {
        while client.live_bindings() > 0 {
            // SAFETY: initialised event; PASSIVE_LEVEL (Unload); no timeout.
            let _ = unsafe {
                KeWaitForSingleObject(
                    self.bindings_gone.get().cast(),
                    Executive,
                    KERNEL_MODE,
                    0,
                    ptr::null_mut(),
                )
            };
        }
    }
}
