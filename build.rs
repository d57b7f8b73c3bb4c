//! Build script for the `wskecho` driver.
//!
//! When the *target* is Windows it lets [`wdk_build`] configure the kernel-mode link (entry
//! point, subsystem, WDK libraries), exactly as windows-drivers-rs drivers do. For host builds
//! (unit tests, the user-mode harness) it does nothing, and wdk-build is not even compiled.

/// wdk-build is linked into this script on Windows hosts and, on other hosts, when the
/// `cross-build` feature is on (scripts/package).
#[cfg(any(windows, feature = "cross-build"))]
fn main() -> Result<(), wdk_build::ConfigError> {
    if targets_windows() {
        wdk_build::configure_wdk_binary_build()
    } else {
        Ok(())
    }
}

#[cfg(not(any(windows, feature = "cross-build")))]
fn main() {
    assert!(
        !targets_windows(),
        "building wskecho for Windows on a non-Windows host needs the Linux route: run \
         scripts/package (see docs/building.md)"
    );
}

/// Whether cargo is building for a Windows target (build scripts see the target in env vars).
fn targets_windows() -> bool {
    std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "windows")
}
