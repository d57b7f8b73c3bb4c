//! A [`Platform`] for loom models: pool accounting that catches double frees, tag mismatches and
//! leaks, and poisons freed blocks so that a use after free trips loom.
//!
//! Freed blocks are filled with [`POISON`] and kept (quarantined) until the pool is dropped at
//! the end of the execution, so a later access reads poison instead of a reused block: loom's
//! atomics are handles into its object store, and a poisoned handle makes loom panic. The
//! pool's own bookkeeping uses a `std` mutex, invisible to loom: it adds no scheduling points and
//! no happens-before edges, so it cannot hide an ordering bug of the core.

use std::{
    alloc::{self, Layout},
    fmt,
    ptr::NonNull,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use wsk_primitives::platform::{Level, Platform, PoolTag};

use crate::loom_common::violated;

/// Pool blocks are aligned like `ExAllocatePool2` blocks on x64.
const ALIGNMENT: usize = 16;
/// The byte freed blocks are filled with.
pub const POISON: u8 = 0xA5;

#[derive(Debug)]
struct Block {
    addr: NonNull<u8>,
    layout: Layout,
    tag: PoolTag,
    live: bool,
}

#[derive(Debug, Default)]
struct Blocks(Vec<Block>);

#[allow(clippy::non_send_fields_in_send_ty)] // exactly the point of this impl, argued below
// SAFETY: the pointers are only addresses of blocks this pool owns; they are dereferenced only by
// the pool (to poison and finally free them), under the mutex.
unsafe impl Send for Blocks {}

impl Drop for Blocks {
    fn drop(&mut self) {
        for block in self.0.drain(..) {
            // SAFETY: every block was allocated with this layout and is freed exactly once, here
            // (`free` only poisons and quarantines).
            unsafe { alloc::dealloc(block.addr.as_ptr(), block.layout) };
        }
    }
}

/// The accounting pool. Clones share the same accounting.
#[derive(Clone, Debug, Default)]
pub struct LoomPlatform {
    blocks: Arc<Mutex<Blocks>>,
}

impl LoomPlatform {
    /// An empty pool.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn blocks(&self) -> MutexGuard<'_, Blocks> {
        self.blocks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks allocated and not freed, with their tags.
    #[must_use]
    pub fn live(&self) -> Vec<PoolTag> {
        self.blocks()
            .0
            .iter()
            .filter(|b| b.live)
            .map(|b| b.tag)
            .collect()
    }

    /// Blocks ever allocated.
    #[must_use]
    pub fn allocations(&self) -> usize {
        self.blocks().0.len()
    }

    /// Checks that every block was freed.
    pub fn assert_all_freed(&self) {
        let live = self.live();
        if !live.is_empty() {
            violated(format_args!("pool blocks leaked: {live:?}"));
        }
    }
}

impl Platform for LoomPlatform {
    fn allocate(&self, size: usize, tag: PoolTag) -> Option<NonNull<u8>> {
        let layout = Layout::from_size_align(size.max(1), ALIGNMENT).ok()?;
        // SAFETY: the layout has a non-zero size.
        let addr = NonNull::new(unsafe { alloc::alloc(layout) })?;
        self.blocks().0.push(Block {
            addr,
            layout,
            tag,
            live: true,
        });
        Some(addr)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, tag: PoolTag) {
        let mut blocks = self.blocks();
        let Some(block) = blocks.0.iter_mut().rev().find(|b| b.addr == ptr) else {
            drop(blocks);
            violated(format_args!(
                "free of memory the pool never allocated ({ptr:p})"
            ));
        };
        if !block.live {
            drop(blocks);
            violated(format_args!("double free of a {tag:?} block ({ptr:p})"));
        }
        if block.tag != tag {
            let allocated = block.tag;
            drop(blocks);
            violated(format_args!(
                "block allocated with tag {allocated:?} freed with {tag:?}"
            ));
        }
        block.live = false;
        // SAFETY: the block is live (checked above), `layout.size()` bytes long, and the caller
        // promises not to use it again: poisoning it makes a use after free visible.
        unsafe { block.addr.as_ptr().write_bytes(POISON, block.layout.size()) };
    }

    fn log(&self, _level: Level, _args: fmt::Arguments<'_>) {}
}
