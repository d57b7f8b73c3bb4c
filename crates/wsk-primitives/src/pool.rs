//! Owning pointers to tagged platform memory ([`Platform::allocate`]).
//!
//! A WSK client built on these never uses a global allocator: its binding, slot array and
//! sockets live in memory from [`Platform::allocate`] with a pool tag, owned by a [`PoolBox`]
//! (one value, optionally followed by a byte tail) or a [`PoolSlice`]. Freeing needs the platform, so it is
//! explicit ([`PoolBox::free`]); dropping an owner without freeing leaks (the test platforms
//! report it).

use ::core::{
    mem::{align_of, size_of},
    ptr::NonNull,
};

use crate::platform::{Platform, PoolTag};

/// Alignment [`Platform::allocate`] guarantees.
pub const POOL_ALIGNMENT: usize = 16;

/// Allocates room for `size` bytes aligned for `T`, or `None`.
///
/// The allocating functions of this module are `#[track_caller]` on host builds, so that an
/// accounting platform (the host emulation) attributes each allocation to the line that asked
/// for it; the kernel build leaves them plain, keeping source paths out of the image.
#[cfg_attr(not(target_os = "windows"), track_caller)]
fn allocate_for<T, Pl: Platform + ?Sized>(
    platform: &Pl,
    size: usize,
    tag: PoolTag,
) -> Option<NonNull<T>> {
    if align_of::<T>() > POOL_ALIGNMENT {
        return None;
    }
    platform.allocate(size.max(1), tag).map(NonNull::cast)
}

/// One `T` in platform memory, optionally followed by a tail of bytes.
#[derive(Debug)]
#[must_use = "dropping a PoolBox leaks it: free it with PoolBox::free"]
pub struct PoolBox<T> {
    ptr: NonNull<T>,
    tag: PoolTag,
}

impl<T> PoolBox<T> {
    /// Moves `value` into new memory tagged `tag`.
    ///
    /// # Errors
    /// Gives `value` back when the allocation fails.
    #[cfg_attr(not(target_os = "windows"), track_caller)]
    pub fn try_new<Pl: Platform + ?Sized>(
        platform: &Pl,
        tag: PoolTag,
        value: T,
    ) -> Result<Self, T> {
        match Self::try_new_with_tail(platform, tag, value, 0) {
            Ok((this, _)) => Ok(this),
            Err(value) => Err(value),
        }
    }

    /// Moves `value` into new memory tagged `tag`, followed by `tail` zeroed bytes, returned as
    /// a raw slice valid until the box is freed.
    ///
    /// # Errors
    /// Gives `value` back when the size overflows or the allocation fails.
    #[cfg_attr(not(target_os = "windows"), track_caller)]
    pub fn try_new_with_tail<Pl: Platform + ?Sized>(
        platform: &Pl,
        tag: PoolTag,
        value: T,
        tail: usize,
    ) -> Result<(Self, NonNull<[u8]>), T> {
        let Some(size) = size_of::<T>().checked_add(tail) else {
            return Err(value);
        };
        let Some(ptr) = allocate_for::<T, Pl>(platform, size, tag) else {
            return Err(value);
        };
        // SAFETY: `ptr` is a fresh allocation of at least `size_of::<T>()` bytes, aligned for T.
        unsafe { ptr.as_ptr().write(value) };
        // SAFETY: the tail starts right after the value, inside the allocation of `size` bytes.
        let tail_start = unsafe { ptr.cast::<u8>().add(size_of::<T>()) };
        // SAFETY: `tail` bytes from `tail_start` are inside the allocation, not yet referenced.
        unsafe { tail_start.as_ptr().write_bytes(0, tail) };
        Ok((
            Self { ptr, tag },
            NonNull::slice_from_raw_parts(tail_start, tail),
        ))
    }

    /// The value's address (valid until [`PoolBox::free`]).
    #[must_use]
    pub const fn as_non_null(&self) -> NonNull<T> {
        self.ptr
    }

    /// Gives up ownership; [`PoolBox::from_raw`] takes it back.
    #[must_use]
    pub const fn into_raw(self) -> NonNull<T> {
        self.ptr
    }

    /// Takes back ownership given up with [`PoolBox::into_raw`].
    ///
    /// # Safety
    /// `ptr` came from `into_raw` of a box allocated with `tag`, and is owned by no one else.
    pub const unsafe fn from_raw(ptr: NonNull<T>, tag: PoolTag) -> Self {
        Self { ptr, tag }
    }

    /// Drops the value and frees the memory.
    ///
    /// # Safety
    /// `platform` is the one that allocated the box; no reference to the value is used after.
    pub unsafe fn free<Pl: Platform + ?Sized>(self, platform: &Pl) {
        // SAFETY: the box owns an initialized value that nothing references any more.
        unsafe { self.ptr.as_ptr().drop_in_place() };
        // SAFETY: allocated by `platform` with `self.tag`; not used again.
        unsafe { platform.free(self.ptr.cast(), self.tag) };
    }
}

/// `len` values of `T` in platform memory.
#[derive(Debug)]
#[must_use = "dropping a PoolSlice leaks it: free it with PoolSlice::free"]
pub struct PoolSlice<T> {
    ptr: NonNull<T>,
    len: usize,
    tag: PoolTag,
}

// SAFETY: a PoolSlice owns its values like a Box<[T]> does.
unsafe impl<T: Send> Send for PoolSlice<T> {}
// SAFETY: shared access only hands out `&[T]`.
unsafe impl<T: Sync> Sync for PoolSlice<T> {}

impl<T> PoolSlice<T> {
    /// Allocates `len` values tagged `tag`, the i-th initialized with `init(i)`. `None` when
    /// the size overflows or the allocation fails.
    #[cfg_attr(not(target_os = "windows"), track_caller)]
    pub fn try_new_with<Pl: Platform + ?Sized>(
        platform: &Pl,
        tag: PoolTag,
        len: usize,
        mut init: impl FnMut(usize) -> T,
    ) -> Option<Self> {
        let size = size_of::<T>().checked_mul(len)?;
        let ptr = allocate_for::<T, Pl>(platform, size, tag)?;
        for i in 0..len {
            // SAFETY: `i < len`: inside the allocation of `len` values.
            let slot = unsafe { ptr.add(i) };
            // SAFETY: in bounds, aligned for T, not yet initialized or referenced.
            unsafe { slot.as_ptr().write(init(i)) };
        }
        Some(Self { ptr, len, tag })
    }

    /// The values.
    #[must_use]
    pub const fn as_slice(&self) -> &[T] {
        // SAFETY: `len` initialized values, alive until `free` (which takes `self`).
        unsafe { ::core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Drops the values and frees the memory.
    ///
    /// # Safety
    /// `platform` is the one that allocated the slice.
    pub unsafe fn free<Pl: Platform + ?Sized>(self, platform: &Pl) {
        let values = NonNull::slice_from_raw_parts(self.ptr, self.len);
        // SAFETY: the slice owns `len` initialized values that nothing references any more.
        unsafe { values.as_ptr().drop_in_place() };
        // SAFETY: allocated by `platform` with `self.tag`; not used again.
        unsafe { platform.free(self.ptr.cast(), self.tag) };
    }
}
