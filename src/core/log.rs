//! Logging macros over [`Platform::log`](wsk_primitives::platform::Platform::log).
//!
//! `log_error!(platform, "...", args)` and friends format lazily (no allocation) and pass the
//! line to the platform, which adds the `wskecho: ` prefix. NTSTATUS values print as hex
//! (`NtStatus`'s `Display`); endpoints print as `ADDR:PORT`.

/// Logs at [`Level::Error`](wsk_primitives::platform::Level::Error).
macro_rules! log_error {
    ($platform:expr, $($arg:tt)*) => {
        ::wsk_primitives::platform::Platform::log(
            $platform, ::wsk_primitives::platform::Level::Error, format_args!($($arg)*))
    };
}

/// Logs at [`Level::Warning`](wsk_primitives::platform::Level::Warning).
macro_rules! log_warning {
    ($platform:expr, $($arg:tt)*) => {
        ::wsk_primitives::platform::Platform::log(
            $platform, ::wsk_primitives::platform::Level::Warning, format_args!($($arg)*))
    };
}

/// Logs at [`Level::Trace`](wsk_primitives::platform::Level::Trace): lifecycle steps.
macro_rules! log_trace {
    ($platform:expr, $($arg:tt)*) => {
        ::wsk_primitives::platform::Platform::log(
            $platform, ::wsk_primitives::platform::Level::Trace, format_args!($($arg)*))
    };
}

/// Logs at [`Level::Info`](wsk_primitives::platform::Level::Info): per-connection detail.
macro_rules! log_info {
    ($platform:expr, $($arg:tt)*) => {
        ::wsk_primitives::platform::Platform::log(
            $platform, ::wsk_primitives::platform::Level::Info, format_args!($($arg)*))
    };
}

#[allow(unused_imports)] // not every level is used by every build
pub(crate) use {log_error, log_info, log_trace, log_warning};
