//! Compile-time cross-checks between values the platform-neutral client writes by hand (it may
//! not depend on wdk-sys) and the same values from the Windows bindings: wdk-sys's
//! `constants.rs` (NTSTATUS codes, maintained by Microsoft), the generated `winnt.h` registry
//! types, plus this crate's own `wsk.h` declarations. A mismatch fails the Windows build, so the
//! client can never hand the kernel a status or type that means something else.

use wdk_sys::{
    NTSTATUS, STATUS_ADDRESS_ALREADY_EXISTS, STATUS_CANCELLED, STATUS_CONNECTION_ABORTED,
    STATUS_CONNECTION_RESET, STATUS_DEVICE_NOT_READY, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER, STATUS_NOINTERFACE, STATUS_PENDING,
    STATUS_REQUEST_NOT_ACCEPTED, STATUS_SUCCESS, STATUS_UNSUCCESSFUL,
};

use crate::ffi::wsk::MAKE_WSK_VERSION;
use wsk_client::{config, wsk_version::WSK_VERSION_1_0};
use wsk_primitives::status::NtStatus;

/// The core's status and the binding's are the same code.
const fn same(core: NtStatus, windows: NTSTATUS) -> bool {
    core.0 == windows
}

const _: () = assert!(same(NtStatus::SUCCESS, STATUS_SUCCESS));
const _: () = assert!(same(NtStatus::PENDING, STATUS_PENDING));
const _: () = assert!(same(NtStatus::UNSUCCESSFUL, STATUS_UNSUCCESSFUL));
const _: () = assert!(same(NtStatus::INVALID_PARAMETER, STATUS_INVALID_PARAMETER));
const _: () = assert!(same(
    NtStatus::INSUFFICIENT_RESOURCES,
    STATUS_INSUFFICIENT_RESOURCES
));
const _: () = assert!(same(NtStatus::NOINTERFACE, STATUS_NOINTERFACE));
const _: () = assert!(same(
    NtStatus::REQUEST_NOT_ACCEPTED,
    STATUS_REQUEST_NOT_ACCEPTED
));
const _: () = assert!(same(NtStatus::CANCELLED, STATUS_CANCELLED));
const _: () = assert!(same(NtStatus::CONNECTION_RESET, STATUS_CONNECTION_RESET));
const _: () = assert!(same(
    NtStatus::CONNECTION_ABORTED,
    STATUS_CONNECTION_ABORTED
));
const _: () = assert!(same(
    NtStatus::ADDRESS_ALREADY_EXISTS,
    STATUS_ADDRESS_ALREADY_EXISTS
));
const _: () = assert!(same(
    NtStatus::INVALID_DEVICE_STATE,
    STATUS_INVALID_DEVICE_STATE
));
const _: () = assert!(same(NtStatus::DEVICE_NOT_READY, STATUS_DEVICE_NOT_READY));

// Registry value types the core's configuration parser checks
// (`KEY_VALUE_PARTIAL_INFORMATION.Type`).
const _: () = assert!(config::REG_SZ == wdk_sys::REG_SZ);
const _: () = assert!(config::REG_DWORD == wdk_sys::REG_DWORD);
const _: () = assert!(config::REG_MULTI_SZ == wdk_sys::REG_MULTI_SZ);

// The WSK version the core requires is the one the client dispatch announces.
const _: () = assert!(WSK_VERSION_1_0 == MAKE_WSK_VERSION(1, 0));
