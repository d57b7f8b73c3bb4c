//! The `Root\wskecho` device object's remove lock (`IO_REMOVE_LOCK`): every IRP the driver
//! handles holds it while the driver uses the device object, and `IRP_MN_REMOVE_DEVICE` waits
//! for all holders before the device object is deleted ("Using Remove Locks",
//! <https://learn.microsoft.com/windows-hardware/drivers/kernel/using-remove-locks>).
//!
//! `wdm.h` reaches the exported `...Ex` functions only through macros that add
//! `sizeof(IO_REMOVE_LOCK)` (and `__FILE__`/`__LINE__` for the acquire), so bindgen generates
//! the functions but not the macros; they are written here. In a free (non-`DBG`) build
//! `IO_REMOVE_LOCK` is just its common block (32 bytes on x64), which is what the driver
//! passes: the kernel keeps no debug tracking for it.
//!
//! IRQL: `IoInitializeRemoveLock` and `IoReleaseRemoveLockAndWait` at `PASSIVE_LEVEL`;
//! `IoAcquireRemoveLock` and `IoReleaseRemoveLock` at IRQL <= `DISPATCH_LEVEL`
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioinitializeremovelock>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioacquireremovelock>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioreleaseremovelock>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioreleaseremovelockandwait>).

use core::mem::{offset_of, size_of};

use wdk_sys::{
    IO_REMOVE_LOCK, IO_REMOVE_LOCK_COMMON_BLOCK, IRP, NTSTATUS, ULONG,
    ntddk::{
        IoAcquireRemoveLockEx, IoInitializeRemoveLockEx, IoReleaseRemoveLockAndWaitEx,
        IoReleaseRemoveLockEx,
    },
};

use wsk_primitives::platform::PoolTag;

/// Tag of the remove lock (`IoInitializeRemoveLock`'s `AllocateTag`, used by checked builds of
/// Windows to tag its tracking blocks), in the driver's pool tag style.
pub const REMOVE_LOCK_TAG: PoolTag = PoolTag::from_chars(*b"WErl");

/// `sizeof(IO_REMOVE_LOCK)` of a free build: the `RemlockSize` argument of every `...Ex` call.
const REMOVE_LOCK_SIZE: ULONG = 32;
const _: () = assert!(size_of::<IO_REMOVE_LOCK>() == REMOVE_LOCK_SIZE as usize);
const _: () = assert!(size_of::<IO_REMOVE_LOCK_COMMON_BLOCK>() == REMOVE_LOCK_SIZE as usize);
// IO_REMOVE_LOCK_COMMON_BLOCK { BOOLEAN Removed; BOOLEAN Reserved[3]; LONG IoCount; KEVENT
// RemoveEvent; } (wdm.h): the kernel owns the fields; the offsets pin the layout it expects.
const _: () = assert!(offset_of!(IO_REMOVE_LOCK_COMMON_BLOCK, IoCount) == 4);
const _: () = assert!(offset_of!(IO_REMOVE_LOCK_COMMON_BLOCK, RemoveEvent) == 8);

/// `IoInitializeRemoveLock(Lock, REMOVE_LOCK_TAG, 0, 0)` → `IoInitializeRemoveLockEx(.., 32)`.
/// `MaxLockedMinutes` and `HighWatermark` 0: no limits (both only checked by debug builds of
/// Windows). `PASSIVE_LEVEL`.
///
/// # Safety
/// `lock` points to non-paged memory (the device extension) that is not yet in use.
pub unsafe fn initialize(lock: *mut IO_REMOVE_LOCK) {
    // SAFETY: valid, unused lock storage (caller); PASSIVE_LEVEL (AddDevice).
    unsafe { IoInitializeRemoveLockEx(lock, REMOVE_LOCK_TAG.0, 0, 0, REMOVE_LOCK_SIZE) };
}

/// `IoAcquireRemoveLock(Lock, Irp)` → `IoAcquireRemoveLockEx(Lock, Irp, __FILE__, __LINE__,
/// 32)`. `STATUS_SUCCESS`, or `STATUS_DELETE_PENDING` once removal has started (then the lock
/// is not held). IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `lock` was initialised with [`initialize`] and its device object still exists.
pub unsafe fn acquire(lock: *mut IO_REMOVE_LOCK, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: initialised lock (caller); the IRP pointer is only an identifying tag; the file
    // name is a static NUL-terminated string.
    unsafe {
        IoAcquireRemoveLockEx(
            lock,
            irp.cast(),
            c"src/kernel/remove_lock.rs".as_ptr(),
            line!(),
            REMOVE_LOCK_SIZE,
        )
    }
}

/// `IoReleaseRemoveLock(Lock, Irp)` → `IoReleaseRemoveLockEx(Lock, Irp, 32)`.
/// IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// Releases one successful [`acquire`] with the same `irp` tag.
pub unsafe fn release(lock: *mut IO_REMOVE_LOCK, irp: *mut IRP) {
    // SAFETY: the lock is held under this tag (caller).
    unsafe { IoReleaseRemoveLockEx(lock, irp.cast(), REMOVE_LOCK_SIZE) };
}

/// `IoReleaseRemoveLockAndWait(Lock, Irp)` → `IoReleaseRemoveLockAndWaitEx(Lock, Irp, 32)`:
/// releases the remove IRP's own acquisition, marks the lock removed (later acquires fail
/// with `STATUS_DELETE_PENDING`) and waits until every other holder released it.
/// `PASSIVE_LEVEL` (`IRP_MN_REMOVE_DEVICE`).
///
/// # Safety
/// Called once, from `IRP_MN_REMOVE_DEVICE`, holding the lock under the `irp` tag.
pub unsafe fn release_and_wait(lock: *mut IO_REMOVE_LOCK, irp: *mut IRP) {
    // SAFETY: the lock is held under this tag (caller); PASSIVE_LEVEL.
    unsafe { IoReleaseRemoveLockAndWaitEx(lock, irp.cast(), REMOVE_LOCK_SIZE) };
}
