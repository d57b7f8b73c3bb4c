//! One socket's work item: where its state machine runs and makes its WSK calls.
//!
//! A WSK client "should not call new WSK functions in the context of the `IoCompletion` routine"
//! (<https://learn.microsoft.com/windows-hardware/drivers/network/using-irps-with-winsock-kernel-functions>),
//! and `WskCloseSocket` waits for the socket's event callbacks in progress
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_close_socket>).
//! So completions and `WskAcceptEvent` only post events to the core, and the core asks for a
//! run ([`wsk_client::provider::Provider::schedule`]); the run happens here, in a
//! `WorkItemEx` routine on a system worker thread at `PASSIVE_LEVEL`
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nc-wdm-io_workitem_routine_ex>).
//!
//! The `IO_WORKITEM` lives in its own pool block (tag `WEwi`, `IoSizeofWorkItem` bytes),
//! initialised on the driver object with `IoInitializeWorkItem` when the socket's I/O
//! resources are allocated, so queueing it never allocates and cannot fail. While the routine
//! runs, the I/O manager holds a reference on the driver object, so the image stays loaded
//! until the routine has returned, also when the run frees the socket and completes the
//! binding's detach (`Unload` may return meanwhile).
//!
//! The core queues a socket's work item only as its runner, and the run ends inside the
//! routine, so the item is never queued twice at once; the system dequeues an item before
//! running its routine, so the routine may free it, and the item may be queued again once the
//! routine has started
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iouninitializeworkitem>).
//!
//! IRQL: `IoSizeofWorkItem`, `IoInitializeWorkItem` and `IoUninitializeWorkItem` at any IRQL;
//! `IoQueueWorkItemEx` at IRQL <= `DISPATCH_LEVEL`
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iosizeofworkitem>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioinitializeworkitem>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioqueueworkitemex>).

use core::{ffi::c_void, ptr::NonNull};

use wdk_sys::{
    _IO_WORKITEM,
    _WORK_QUEUE_TYPE::DelayedWorkQueue,
    DRIVER_OBJECT, PIO_WORKITEM,
    ntddk::{IoInitializeWorkItem, IoQueueWorkItemEx, IoSizeofWorkItem, IoUninitializeWorkItem},
};

use crate::platform::KernelPlatform;
use wsk_client::{provider::Provider, socket::SocketRef};
use wsk_primitives::platform::{Platform, PoolTag};

/// Pool tag of a socket's `IO_WORKITEM` block.
pub const WORK_ITEM_TAG: PoolTag = PoolTag::from_chars(*b"WEwi");

/// An initialised `IO_WORKITEM`, uninitialised and freed on drop.
pub struct OwnedWorkItem {
    item: NonNull<_IO_WORKITEM>,
}

// SAFETY: an IO_WORKITEM may be queued from any thread at IRQL <= DISPATCH_LEVEL; the core
// never queues one item twice at once (module documentation).
unsafe impl Send for OwnedWorkItem {}
// SAFETY: as above: shared references only queue it.
unsafe impl Sync for OwnedWorkItem {}

impl OwnedWorkItem {
    /// Allocates and initialises a work item on `driver`. `None` if the allocation fails.
    pub fn allocate(driver: NonNull<DRIVER_OBJECT>) -> Option<Self> {
        // SAFETY: callable at any IRQL; no arguments.
        let size = usize::try_from(unsafe { IoSizeofWorkItem() }).ok()?;
        let item = KernelPlatform
            .allocate(size, WORK_ITEM_TAG)?
            .cast::<_IO_WORKITEM>();
        // SAFETY: `item` is `IoSizeofWorkItem()` bytes of non-paged memory owned by us; the
        // driver object outlives every socket (its I/O resources are freed before Unload
        // returns).
        unsafe { IoInitializeWorkItem(driver.as_ptr().cast(), item.as_ptr()) };
        Some(Self { item })
    }

    /// The item, for [`queue`].
    pub const fn as_ptr(&self) -> PIO_WORKITEM {
        self.item.as_ptr()
    }
}

/// Queues `item`: [`run`] calls [`SocketRef::run_scheduled`] with `token` on a system worker
/// thread. A raw pointer, not `&OwnedWorkItem`: the routine may run on another CPU and free
/// the socket, this item with it, before `IoQueueWorkItemEx` returns.
///
/// # Safety
/// `item` is an initialised work item ([`OwnedWorkItem::as_ptr`]) that is not queued (the core
/// schedules a socket once per run); `token` is its socket's, kept alive by the reference its
/// schedule took.
pub unsafe fn queue<P: Provider>(item: PIO_WORKITEM, token: SocketRef<P>) {
    // SAFETY: an initialised item that is not queued (caller); `run` matches
    // IO_WORKITEM_ROUTINE_EX; drivers must use DelayedWorkQueue (IoQueueWorkItemEx page).
    unsafe { IoQueueWorkItemEx(item, Some(run::<P>), DelayedWorkQueue, token.as_context()) };
}

impl Drop for OwnedWorkItem {
    fn drop(&mut self) {
        // SAFETY: initialised by `allocate`; not queued: the core frees a socket's I/O
        // resources only from the socket's last reference, and a queued run holds one.
        unsafe { IoUninitializeWorkItem(self.item.as_ptr()) };
        // SAFETY: allocated by `allocate` with this tag; not used again.
        unsafe { KernelPlatform.free(self.item.cast(), WORK_ITEM_TAG) };
    }
}

/// The `WorkItemEx` routine (`IO_WORKITEM_ROUTINE_EX`): `PASSIVE_LEVEL`, system thread.
unsafe extern "C" fn run<P: Provider>(
    _io_object: *mut c_void,
    context: *mut c_void,
    _item: PIO_WORKITEM,
) {
    // SAFETY: the context is the token `queue` was given, for exactly this run.
    let token = unsafe { SocketRef::<P>::from_context(context) };
    // SAFETY: one run per queueing; a work item routine is outside every completion routine
    // and WSK callback.
    unsafe { token.run_scheduled() };
}
