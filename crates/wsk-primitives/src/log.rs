//! Logging macros over [`Platform::log`](crate::platform::Platform::log).
//!
//! `log_error!(platform, "...", args)` and friends format lazily (no allocation) and pass the
//! line to the platform, which adds its prefix (the driver's, e.g. `wskecho: `). Exported at the
//! crate root: `use wsk_primitives::log_error;`. NTSTATUS values print as hex
//! (`NtStatus`'s `Display`); endpoints print as `ADDR:PORT`.

/// Logs at [`Level::Error`](crate::platform::Level::Error).
#[macro_export]
macro_rules! log_error {
    ($platform:expr, $($arg:tt)*) => {
        $crate::platform::Platform::log(
            $platform, $crate::platform::Level::Error, format_args!($($arg)*))
    };
}

/// Logs at [`Level::Warning`](crate::platform::Level::Warning).
#[macro_export]
macro_rules! log_warning {
    ($platform:expr, $($arg:tt)*) => {
        $crate::platform::Platform::log(
            $platform, $crate::platform::Level::Warning, format_args!($($arg)*))
    };
}

/// Logs at [`Level::Trace`](crate::platform::Level::Trace): lifecycle steps.
#[macro_export]
macro_rules! log_trace {
    ($platform:expr, $($arg:tt)*) => {
        $crate::platform::Platform::log(
            $platform, $crate::platform::Level::Trace, format_args!($($arg)*))
    };
}

/// Logs at [`Level::Info`](crate::platform::Level::Info): per-connection detail.
#[macro_export]
macro_rules! log_info {
    ($platform:expr, $($arg:tt)*) => {
        $crate::platform::Platform::log(
            $platform, $crate::platform::Level::Info, format_args!($($arg)*))
    };
}
