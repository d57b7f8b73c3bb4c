//! The binding's timer ([`wsk_client::provider::Provider::arm_timer`]): a one-shot `KTIMER`
//! whose DPC queues the binding's work item, which runs the core's tick
//! ([`BindingRef::tick`]) at `PASSIVE_LEVEL`.
//!
//! Why a work item after the DPC: the tick reads every connection slot (up to
//! `MaxConnections`, 65,536) and may allocate a listener's resources, too much for a DPC,
//! which should finish in tens of microseconds
//! (<https://learn.microsoft.com/windows-hardware/drivers/kernel/guidelines-for-writing-dpc-routines>).
//! The DPC only queues the work item (`IoQueueWorkItemEx`, IRQL <= `DISPATCH_LEVEL`), and the
//! core arms the timer again only from the tick, so the item is never queued twice.
//!
//! Memory: the `KTIMER` and `KDPC` live in one non-paged block (tag `WEtm`), the work item in
//! its own (`work_item.rs`, tag `WEwi`), both allocated with the provider in
//! `ClientAttachProvider` and freed with it by the cleanup. The core holds a binding reference
//! while the timer is armed or its tick is due, so the cleanup (which frees both) comes after
//! the tick that dropped it, or after the detach cancelled the timer: the timer is never
//! queued when freed. The DPC routine's last act is queueing the work item; once the kernel
//! called a DPC routine it does not touch the `KDPC` again, so the tick may free the block
//! while the routine returns. What may still be running then is the routine's code: the
//! driver calls `KeFlushQueuedDpcs` after its last binding is gone and before its image may
//! go (one of the driver obligations of [`crate::nmr::attach_provider`]), so the image outlives
//! it (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-keflushqueueddpcs>).
//!
//! IRQL: `KeInitializeTimer` and `KeInitializeDpc` at any IRQL; `KeSetTimer` and
//! `KeCancelTimer` at IRQL <= `DISPATCH_LEVEL`
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-keinitializetimer>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-keinitializedpc>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-kesettimer>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-kecanceltimer>); the
//! DPC runs at `DISPATCH_LEVEL`
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nc-wdm-kdeferred_routine>).
//! `KeSetTimer` and `KeCancelTimer` are ordered by the kernel's timer lock, which the core's
//! tick relies on (`binding.rs`, [`BindingRef::tick`]).

use core::{
    ffi::c_void,
    marker::PhantomData,
    mem::size_of,
    ptr::{self, NonNull},
    sync::atomic::{AtomicPtr, Ordering},
};

use wdk_sys::{
    _WORK_QUEUE_TYPE::DelayedWorkQueue,
    DRIVER_OBJECT, KDPC, KTIMER, LARGE_INTEGER, PIO_WORKITEM,
    ntddk::{IoQueueWorkItemEx, KeCancelTimer, KeInitializeDpc, KeInitializeTimer, KeSetTimer},
};

use crate::{platform::KernelPlatform, work_item::OwnedWorkItem};
use wsk_client::{binding::BindingRef, provider::Provider};
use wsk_primitives::platform::{Platform, PoolTag};

/// Pool tag of a binding's timer block.
pub const TIMER_TAG: PoolTag = PoolTag::from_chars(*b"WEtm");

/// `KeSetTimer`'s due time counts 100-nanosecond units; negative means relative.
const UNITS_PER_MS: i64 = 10_000;

/// The non-paged block the kernel's timer objects live in.
#[repr(C)]
struct TimerBlock {
    timer: KTIMER,
    dpc: KDPC,
    /// The binding context of the armed tick: written before `KeSetTimer`, read by the DPC
    /// (the timer lock orders the two).
    binding: AtomicPtr<c_void>,
    /// The work item the DPC queues.
    item: PIO_WORKITEM,
}

/// One binding's timer: its block and its work item. `P` is the provider type of the binding
/// it ticks.
pub struct BindingTimer<P> {
    block: NonNull<TimerBlock>,
    /// Owned here (freed on drop); the DPC reaches it through the block.
    #[expect(
        dead_code,
        reason = "kept for its drop; used through `TimerBlock::item`"
    )]
    work_item: OwnedWorkItem,
    _provider: PhantomData<fn() -> P>,
}

// SAFETY: `KeSetTimer` and `KeCancelTimer` may be called on one timer from any thread at IRQL
// <= DISPATCH_LEVEL; the core never arms it twice at once (module documentation).
unsafe impl<P> Send for BindingTimer<P> {}
// SAFETY: as above: shared references only arm and cancel it.
unsafe impl<P> Sync for BindingTimer<P> {}

impl<P: Provider> BindingTimer<P> {
    /// Allocates and initialises the timer, its DPC and its work item (on `driver`). `None`
    /// if an allocation fails (nothing is left allocated).
    pub fn allocate(driver: NonNull<DRIVER_OBJECT>) -> Option<Self> {
        let work_item = OwnedWorkItem::allocate(driver)?;
        let block = KernelPlatform
            .allocate(size_of::<TimerBlock>(), TIMER_TAG)?
            .cast::<TimerBlock>();
        let raw = block.as_ptr();
        // Each field of the fresh block (non-paged, aligned, ours alone) is initialised in
        // place through its own raw pointer before any use; no reference to the uninitialised
        // block is made.
        // SAFETY: as above; `KeInitializeTimer` accepts any IRQL.
        let timer = unsafe { &raw mut (*raw).timer };
        // SAFETY: as above.
        unsafe { KeInitializeTimer(timer) };
        // SAFETY: as above.
        let dpc = unsafe { &raw mut (*raw).dpc };
        // SAFETY: as above; `expired` matches KDEFERRED_ROUTINE; the context is the block.
        unsafe { KeInitializeDpc(dpc, Some(expired::<P>), raw.cast()) };
        // SAFETY: as above.
        let binding = unsafe { &raw mut (*raw).binding };
        // SAFETY: valid for writes and aligned (a field of the block).
        unsafe { binding.write(AtomicPtr::new(ptr::null_mut())) };
        // SAFETY: as above.
        let item = unsafe { &raw mut (*raw).item };
        // SAFETY: valid for writes and aligned (a field of the block).
        unsafe { item.write(work_item.as_ptr()) };
        Some(Self {
            block,
            work_item,
            _provider: PhantomData,
        })
    }

    /// `KeSetTimer`: after `delay_ms`, the DPC queues the work item, which calls the tick of
    /// `binding`.
    pub fn arm(&self, delay_ms: u32, binding: BindingRef<P>) {
        let raw = self.block.as_ptr();
        // SAFETY: the block is live while `self` is; the atomic is only accessed atomically.
        unsafe { &(*raw).binding }.store(binding.as_context(), Ordering::Relaxed);
        let due = LARGE_INTEGER {
            QuadPart: -i64::from(delay_ms) * UNITS_PER_MS,
        };
        // SAFETY: the block is live while `self` is; only field addresses are taken.
        let timer = unsafe { &raw mut (*raw).timer };
        // SAFETY: as above.
        let dpc = unsafe { &raw mut (*raw).dpc };
        // SAFETY: an initialised timer and DPC in live non-paged memory; the core arms it only
        // when it is not armed, so the returned "was already set" is always FALSE.
        unsafe { KeSetTimer(timer, due, dpc) };
    }
}

impl<P> BindingTimer<P> {
    /// `KeCancelTimer`: `true` if the timer was armed and its DPC will not run.
    pub fn cancel(&self) -> bool {
        // SAFETY: the block is live while `self` is; only the field's address is taken.
        let timer = unsafe { &raw mut (*self.block.as_ptr()).timer };
        // SAFETY: an initialised timer in live non-paged memory.
        unsafe { KeCancelTimer(timer) != 0 }
    }
}

impl<P> Drop for BindingTimer<P> {
    fn drop(&mut self) {
        // Never armed here (module documentation); cancelling costs nothing and makes sure.
        let _ = self.cancel();
        // SAFETY: allocated by `allocate` with this tag, not armed, not used again. The work
        // item is freed by its own drop, after this.
        unsafe { KernelPlatform.free(self.block.cast(), TIMER_TAG) };
    }
}

/// The timer's DPC (`KDEFERRED_ROUTINE`, `DISPATCH_LEVEL`): queues the tick's work item.
unsafe extern "C" fn expired<P: Provider>(
    _dpc: *mut KDPC,
    context: *mut c_void,
    _argument1: *mut c_void,
    _argument2: *mut c_void,
) {
    let block = context.cast::<TimerBlock>();
    // SAFETY: the context is the block `allocate` initialised the DPC with; it is live: the
    // binding reference the armed timer holds keeps the provider (and the block) alive until
    // the tick queued below has run.
    let item = unsafe { (*block).item };
    // SAFETY: as above; the atomic is only accessed atomically.
    let binding = unsafe { (*block).binding.load(Ordering::Relaxed) };
    // SAFETY: an initialised work item that is not queued (the core arms the timer only from
    // the tick, after the item was dequeued, or at the attach); drivers use DelayedWorkQueue.
    // Nothing of the block is touched after this call.
    unsafe { IoQueueWorkItemEx(item, Some(tick::<P>), DelayedWorkQueue, binding) };
}

/// The tick's `WorkItemEx` routine (`PASSIVE_LEVEL`, system thread; the I/O manager holds a
/// reference on the driver object meanwhile).
unsafe extern "C" fn tick<P: Provider>(
    _io_object: *mut c_void,
    context: *mut c_void,
    _item: PIO_WORKITEM,
) {
    // SAFETY: the context is the binding token `arm` was given, for exactly this tick.
    let binding = unsafe { BindingRef::<P>::from_context(context) };
    // SAFETY: one tick per arm, outside every completion routine and WSK callback.
    unsafe { binding.tick() };
}
