//! Compile-time cross-checks between the values the Plug and Play device's decisions
//! (`crate::pnp`, platform-neutral and tested on the host) write by hand and wdk-sys's: the
//! `wdm.h` minor function codes (`IRP_MN_*`) and the registry type of the `PnpDevice` switch. A
//! mismatch fails the Windows build. (The client's values are checked by `wsk-kernel`.)

use crate::pnp::{self, PnpMinor};

// The PnP minor function codes the core decides on are wdm.h's IRP_MN_* values, and the
// PnP device switch is a REG_DWORD.
const fn minor_is(minor: PnpMinor, windows: u32) -> bool {
    minor.code() as u32 == windows
}
const _: () = assert!(minor_is(
    PnpMinor::StartDevice,
    wdk_sys::IRP_MN_START_DEVICE
));
const _: () = assert!(minor_is(
    PnpMinor::QueryRemoveDevice,
    wdk_sys::IRP_MN_QUERY_REMOVE_DEVICE
));
const _: () = assert!(minor_is(
    PnpMinor::RemoveDevice,
    wdk_sys::IRP_MN_REMOVE_DEVICE
));
const _: () = assert!(minor_is(
    PnpMinor::CancelRemoveDevice,
    wdk_sys::IRP_MN_CANCEL_REMOVE_DEVICE
));
const _: () = assert!(minor_is(PnpMinor::StopDevice, wdk_sys::IRP_MN_STOP_DEVICE));
const _: () = assert!(minor_is(
    PnpMinor::QueryStopDevice,
    wdk_sys::IRP_MN_QUERY_STOP_DEVICE
));
const _: () = assert!(minor_is(
    PnpMinor::CancelStopDevice,
    wdk_sys::IRP_MN_CANCEL_STOP_DEVICE
));
const _: () = assert!(minor_is(
    PnpMinor::SurpriseRemoval,
    wdk_sys::IRP_MN_SURPRISE_REMOVAL
));
const _: () = assert!(pnp::REG_DWORD == wdk_sys::REG_DWORD);
