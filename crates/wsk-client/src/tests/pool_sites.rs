//! Allocation sites: the pool functions are `#[track_caller]` on host builds, so an accounting
//! platform (the harness's) attributes memory to the core line that asked for it. This test
//! lives outside `wsk-primitives`'s `pool.rs` on purpose: a site inside the wrapper must fail it.

extern crate std;
use ::core::{fmt, panic::Location, ptr::NonNull};
use std::{sync::Mutex, vec::Vec};

use wsk_primitives::platform::{Level, Platform, PoolTag};
use wsk_primitives::pool::{PoolBox, PoolSlice};

const TAG: PoolTag = PoolTag::from_chars(*b"WEts");

/// Records the caller location `Platform::allocate` sees, as the harness's pool does.
#[derive(Default)]
struct SitePlatform {
    sites: Mutex<Vec<&'static Location<'static>>>,
}

impl Platform for SitePlatform {
    #[track_caller]
    fn allocate(&self, size: usize, _tag: PoolTag) -> Option<NonNull<u8>> {
        self.sites.lock().ok()?.push(Location::caller());
        let layout = std::alloc::Layout::from_size_align(size, 16).ok()?;
        // SAFETY: `size` is non-zero (the pool functions ask for at least one byte).
        NonNull::new(unsafe { std::alloc::alloc(layout) })
    }

    unsafe fn free(&self, _ptr: NonNull<u8>, _tag: PoolTag) {
        // The test leaks its few bytes on purpose: it only looks at the sites.
    }

    fn log(&self, _level: Level, _args: fmt::Arguments<'_>) {}
}

#[test]
fn allocation_sites_name_the_caller_not_the_pool_wrapper() {
    let platform = SitePlatform::default();
    // Neither type has Drop: the few bytes stay allocated, which is all this test needs.
    assert!(
        PoolBox::try_new(&platform, TAG, 7_u64).is_ok(),
        "allocation must succeed"
    );
    assert!(
        PoolSlice::try_new_with(&platform, TAG, 3, |i| i).is_some(),
        "allocation must succeed"
    );
    let sites = platform.sites.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(sites.len(), 2);
    for site in sites {
        assert_eq!(site.file(), file!(), "site {site} is not the calling line");
    }
}
