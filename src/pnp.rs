//! Plug and Play: what wskecho, as the function driver of a root-enumerated `Root\wskecho`
//! device, does with each `IRP_MJ_PNP` minor function.
//!
//! Here the WSK client is a subcomponent of the device, the second pattern of
//! Microsoft's "Unregistering and Unloading the WSK Client" page (docs/architecture.md,
//! "Lifecycle"): it registers with the NMR when the device starts and
//! deregisters, waiting until the deregistration completed, when the device stops, is
//! surprise-removed or is removed; `Unload` only verifies that nothing is left. The device
//! has no hardware, so the rest is agreement
//! (<https://learn.microsoft.com/windows-hardware/drivers/kernel/passing-pnp-irps-down-the-device-stack>):
//! a driver that performs no action for an IRP passes it down without touching
//! `Irp->IoStatus`; one that does act sets the status and passes it down; a function driver
//! completes a Plug and Play IRP only when it waited for it to come back up (the start). For
//! the IRPs listed in [`action`],
//! each minor function's page says "A driver must set `Irp->IoStatus.Status` to
//! `STATUS_SUCCESS`" (stop, cancel-stop, remove, cancel-remove, surprise removal) or lets it
//! succeed or fail (query-stop, query-remove, where wskecho agrees: its client can stop at
//! any time).
//!
//! `IRP_MN_START_DEVICE` "must be handled first by the parent bus driver for a device and then
//! by each higher driver" (<https://learn.microsoft.com/windows-hardware/drivers/kernel/irp-mn-start-device>):
//! the function driver passes it down, waits until it comes back, then starts its part (here:
//! registers the WSK client and waits for start-up's verdict, so a device that serves nothing
//! fails to start) and completes the IRP with the result.
//!
//! The minor function codes are written out here (the core does not depend on wdk-sys); the
//! kernel adapter checks at compile time that they equal `wdm.h`'s `IRP_MN_*` values.
//!
//! **The switch.** `DriverEntry` registers `AddDevice` and the Plug and Play, power and WMI
//! dispatch routines only when `Parameters\PnpDevice` is the `REG_DWORD` 1, which only
//! `wskecho-root.inf` writes. A driver whose `AddDevice` is set counts as a Plug and Play driver,
//! and the I/O manager unloads such a driver only when the Plug and Play manager asks for it, never
//! for `sc stop` (`NtUnloadDriver`); a service install would lose its unload.
//! docs/kernel-adapter.md ("The `Root\wskecho` function driver") gives the evidence and what is not
//! verified about it.
//!
//! This file uses nothing but `core`, so `tools/infcheck` compiles it too (the name and value
//! the device INF must write come from here).

/// The `IRP_MJ_PNP` minor functions wskecho acts on (`wdm.h` values). Every other minor
/// function is passed down untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PnpMinor {
    /// `IRP_MN_START_DEVICE`.
    StartDevice = 0x00,
    /// `IRP_MN_QUERY_REMOVE_DEVICE`.
    QueryRemoveDevice = 0x01,
    /// `IRP_MN_REMOVE_DEVICE`.
    RemoveDevice = 0x02,
    /// `IRP_MN_CANCEL_REMOVE_DEVICE`.
    CancelRemoveDevice = 0x03,
    /// `IRP_MN_STOP_DEVICE`.
    StopDevice = 0x04,
    /// `IRP_MN_QUERY_STOP_DEVICE`.
    QueryStopDevice = 0x05,
    /// `IRP_MN_CANCEL_STOP_DEVICE`.
    CancelStopDevice = 0x06,
    /// `IRP_MN_SURPRISE_REMOVAL`.
    SurpriseRemoval = 0x17,
}

impl PnpMinor {
    /// Every variant, for tests and the adapter's compile-time value checks.
    pub const ALL: [Self; 8] = [
        Self::StartDevice,
        Self::QueryRemoveDevice,
        Self::RemoveDevice,
        Self::CancelRemoveDevice,
        Self::StopDevice,
        Self::QueryStopDevice,
        Self::CancelStopDevice,
        Self::SurpriseRemoval,
    ];

    /// The minor function code (`IO_STACK_LOCATION::MinorFunction`).
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The variant for `code`, or `None` for a minor function wskecho does not name.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i].code() == code {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }
}

/// What the `IRP_MJ_PNP` dispatch routine does with an IRP (always under the device's remove
/// lock, which it acquired first); [`PnpAction::steps`] spells it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PnpAction {
    /// Skip the stack location and pass the IRP down; `Irp->IoStatus` untouched.
    PassDown,
    /// Set `Irp->IoStatus.Status = STATUS_SUCCESS`, then skip and pass down.
    SucceedAndPassDown,
    /// `IRP_MN_START_DEVICE`: pass down and wait until the lower drivers completed it, then
    /// (if they started the device) start the WSK client, and complete the IRP with the
    /// result.
    Start,
    /// `IRP_MN_STOP_DEVICE`, `IRP_MN_SURPRISE_REMOVAL`: stop the WSK client (deregistration
    /// complete, no binding left), then succeed and pass down.
    StopAndPassDown,
    /// `IRP_MN_REMOVE_DEVICE`: stop the WSK client, set `STATUS_SUCCESS`, skip and pass down,
    /// release the remove lock and wait for every other holder, then detach from the lower
    /// device and delete the device object. Nothing touches the device object afterwards.
    Remove,
}

/// One step of a [`PnpAction`], in the order the dispatch routine performs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PnpStep {
    /// `Irp->IoStatus.Status = STATUS_SUCCESS`.
    SetSuccess,
    /// `IoSkipCurrentIrpStackLocation` + `IoCallDriver(lower, irp)`; the IRP is not touched
    /// afterwards (the lower driver owns it). Its status is the dispatch routine's result.
    PassDown,
    /// `IoCopyCurrentIrpStackLocationToNext`, a completion routine that signals an event and
    /// returns `STATUS_MORE_PROCESSING_REQUIRED`, `IoCallDriver(lower, irp)`, and the wait for
    /// the event: the IRP is the driver's again, with the lower drivers' status.
    PassDownAndWait,
    /// If the lower drivers succeeded: register the WSK client with the NMR unless another
    /// device already did, and wait for start-up's verdict, which becomes the IRP's status.
    StartClient,
    /// If this device's start registered the WSK client: `NmrDeregisterClient`, on
    /// `STATUS_PENDING` `NmrWaitForClientDeregisterComplete`, then wait until no binding is
    /// live. Idempotent: a later stop or removal of the same device finds nothing to do.
    StopClient,
    /// `IoCompleteRequest` with the status so far; the IRP is not touched afterwards.
    Complete,
    /// `IoReleaseRemoveLock(lock, irp)`: ends the acquisition made on entry.
    ReleaseRemoveLock,
    /// `IoReleaseRemoveLockAndWait(lock, irp)`: ends the acquisition made on entry and waits
    /// until no other IRP holds the lock; every later acquisition fails.
    ReleaseRemoveLockAndWait,
    /// `IoDetachDevice(lower)`.
    DetachFromLower,
    /// `IoDeleteDevice(fdo)`: frees the device object and its extension.
    DeleteDevice,
}

impl PnpAction {
    /// The steps of this action, in order. The kernel adapter performs exactly these.
    ///
    /// `Remove` follows `IoReleaseRemoveLockAndWait`'s page: "each driver should call
    /// `IoReleaseRemoveLockAndWait` after it passes the remove IRP to the next-lower driver,
    /// and before it releases memory, calls `IoDetachDevice`, or calls `IoDeleteDevice`"
    /// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioreleaseremovelockandwait>,
    /// and <https://learn.microsoft.com/windows-hardware/drivers/kernel/using-remove-locks>).
    /// The client stops first, while the device still exists: "the driver must make sure
    /// deregistration has fully completed" before the subcomponent is gone (the seeds).
    #[must_use]
    pub const fn steps(self) -> &'static [PnpStep] {
        match self {
            Self::PassDown => &[PnpStep::PassDown, PnpStep::ReleaseRemoveLock],
            Self::SucceedAndPassDown => &[
                PnpStep::SetSuccess,
                PnpStep::PassDown,
                PnpStep::ReleaseRemoveLock,
            ],
            Self::Start => &[
                PnpStep::PassDownAndWait,
                PnpStep::StartClient,
                PnpStep::Complete,
                PnpStep::ReleaseRemoveLock,
            ],
            Self::StopAndPassDown => &[
                PnpStep::StopClient,
                PnpStep::SetSuccess,
                PnpStep::PassDown,
                PnpStep::ReleaseRemoveLock,
            ],
            Self::Remove => &[
                PnpStep::StopClient,
                PnpStep::SetSuccess,
                PnpStep::PassDown,
                PnpStep::ReleaseRemoveLockAndWait,
                PnpStep::DetachFromLower,
                PnpStep::DeleteDevice,
            ],
        }
    }
}

/// The action for the `IRP_MJ_PNP` minor function `code`.
#[must_use]
pub const fn action(code: u8) -> PnpAction {
    match PnpMinor::from_code(code) {
        Some(PnpMinor::StartDevice) => PnpAction::Start,
        Some(PnpMinor::StopDevice | PnpMinor::SurpriseRemoval) => PnpAction::StopAndPassDown,
        Some(PnpMinor::RemoveDevice) => PnpAction::Remove,
        Some(
            PnpMinor::QueryRemoveDevice
            | PnpMinor::CancelRemoveDevice
            | PnpMinor::QueryStopDevice
            | PnpMinor::CancelStopDevice,
        ) => PnpAction::SucceedAndPassDown,
        None => PnpAction::PassDown,
    }
}

/// Name of the `REG_DWORD` under `<service key>\Parameters` that selects the Plug and Play
/// device install.
pub const PNP_DEVICE_VALUE: &str = "PnpDevice";
/// [`PNP_DEVICE_VALUE`] as UTF-16 (for `ZwQueryValueKey`).
pub const PNP_DEVICE_VALUE_UTF16: [u16; 9] = {
    let ascii = PNP_DEVICE_VALUE.as_bytes();
    let mut out = [0_u16; 9];
    let mut i = 0;
    while i < out.len() && i < ascii.len() {
        out[i] = ascii[i] as u16;
        i += 1;
    }
    out
};
/// The value that selects the Plug and Play device install (the device INF writes it).
pub const PNP_DEVICE_ON: u32 = 1;
/// `REG_DWORD` (`winnt.h`; the adapter checks it against wdk-sys).
pub const REG_DWORD: u32 = 4;

/// Why `Parameters\PnpDevice` was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PnpSwitchError {
    /// Not a `REG_DWORD` (the type found).
    WrongType(u32),
    /// A `REG_DWORD` whose data is not 4 bytes long (the length found).
    BadLength(usize),
    /// Neither 0 nor 1 (the value found).
    OutOfRange(u32),
}

impl ::core::fmt::Display for PnpSwitchError {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        match *self {
            Self::WrongType(found) => {
                write!(
                    f,
                    "registry value {PNP_DEVICE_VALUE}: type {found} is not REG_DWORD (4)"
                )
            }
            Self::BadLength(len) => {
                write!(
                    f,
                    "registry value {PNP_DEVICE_VALUE}: {len} bytes of data, expected 4"
                )
            }
            Self::OutOfRange(value) => {
                write!(
                    f,
                    "registry value {PNP_DEVICE_VALUE}: {value} is neither 0 nor 1"
                )
            }
        }
    }
}

/// Decides the switch from what `ZwQueryValueKey` returned for [`PNP_DEVICE_VALUE`].
///
/// Takes the `KEY_VALUE_PARTIAL_INFORMATION` `Type` and `Data`: `Ok(true)` for the `REG_DWORD`
/// 1, `Ok(false)` for 0. A missing value means `false` (the caller does not call this).
///
/// # Errors
/// Any other type, length or value: bad input fails `DriverEntry` with a clear line rather
/// than guessing which way of installing was meant.
pub fn pnp_device_switch(reg_type: u32, data: &[u8]) -> Result<bool, PnpSwitchError> {
    if reg_type != REG_DWORD {
        return Err(PnpSwitchError::WrongType(reg_type));
    }
    let bytes: [u8; 4] = data
        .try_into()
        .map_err(|_| PnpSwitchError::BadLength(data.len()))?;
    match u32::from_le_bytes(bytes) {
        0 => Ok(false),
        PNP_DEVICE_ON => Ok(true),
        other => Err(PnpSwitchError::OutOfRange(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_accepts_only_dword_0_and_1() {
        assert_eq!(pnp_device_switch(REG_DWORD, &1_u32.to_le_bytes()), Ok(true));
        assert_eq!(
            pnp_device_switch(REG_DWORD, &0_u32.to_le_bytes()),
            Ok(false)
        );
        assert_eq!(
            pnp_device_switch(REG_DWORD, &2_u32.to_le_bytes()),
            Err(PnpSwitchError::OutOfRange(2))
        );
        assert_eq!(
            pnp_device_switch(1, &[b'1', 0]),
            Err(PnpSwitchError::WrongType(1))
        );
        assert_eq!(
            pnp_device_switch(REG_DWORD, &[1, 0]),
            Err(PnpSwitchError::BadLength(2))
        );
        assert_eq!(
            pnp_device_switch(REG_DWORD, &[1, 0, 0, 0, 0, 0, 0, 0]),
            Err(PnpSwitchError::BadLength(8))
        );
    }

    #[test]
    fn switch_errors_name_the_value() {
        extern crate std;
        use std::string::ToString;
        let text = PnpSwitchError::OutOfRange(7).to_string();
        assert_eq!(text, "registry value PnpDevice: 7 is neither 0 nor 1");
        assert!(
            PnpSwitchError::WrongType(1)
                .to_string()
                .contains("PnpDevice")
        );
    }

    #[test]
    fn value_name_utf16_matches_the_name() {
        extern crate std;
        let decoded: std::vec::Vec<u16> = PNP_DEVICE_VALUE.encode_utf16().collect();
        assert_eq!(&PNP_DEVICE_VALUE_UTF16[..], &decoded[..]);
    }

    #[test]
    fn codes_are_the_wdm_values() {
        // IRP_MN_* from wdm.h (the kernel adapter also checks these against wdk-sys).
        let expected: [(PnpMinor, u8); 8] = [
            (PnpMinor::StartDevice, 0x00),
            (PnpMinor::QueryRemoveDevice, 0x01),
            (PnpMinor::RemoveDevice, 0x02),
            (PnpMinor::CancelRemoveDevice, 0x03),
            (PnpMinor::StopDevice, 0x04),
            (PnpMinor::QueryStopDevice, 0x05),
            (PnpMinor::CancelStopDevice, 0x06),
            (PnpMinor::SurpriseRemoval, 0x17),
        ];
        for (minor, code) in expected {
            assert_eq!(minor.code(), code, "{minor:?}");
            assert_eq!(PnpMinor::from_code(code), Some(minor));
        }
    }

    #[test]
    fn from_code_round_trips_and_rejects_unnamed_codes() {
        for code in 0..=u8::MAX {
            match PnpMinor::from_code(code) {
                Some(minor) => assert_eq!(minor.code(), code),
                None => assert!(
                    !PnpMinor::ALL.iter().any(|minor| minor.code() == code),
                    "code {code:#x} is named but not found"
                ),
            }
        }
        let named = (0..=u8::MAX)
            .filter(|&code| PnpMinor::from_code(code).is_some())
            .count();
        assert_eq!(named, PnpMinor::ALL.len());
    }

    #[test]
    fn only_remove_device_deletes_the_device() {
        for code in 0..=u8::MAX {
            let expected = code == PnpMinor::RemoveDevice.code();
            assert_eq!(action(code) == PnpAction::Remove, expected, "{code:#x}");
        }
    }

    #[test]
    fn state_changes_succeed_before_passing_down() {
        for minor in [
            PnpMinor::QueryRemoveDevice,
            PnpMinor::CancelRemoveDevice,
            PnpMinor::QueryStopDevice,
            PnpMinor::CancelStopDevice,
        ] {
            assert_eq!(
                action(minor.code()),
                PnpAction::SucceedAndPassDown,
                "{minor:?}"
            );
        }
        for minor in [PnpMinor::StopDevice, PnpMinor::SurpriseRemoval] {
            assert_eq!(
                action(minor.code()),
                PnpAction::StopAndPassDown,
                "{minor:?}"
            );
        }
    }

    const ACTIONS: [PnpAction; 5] = [
        PnpAction::PassDown,
        PnpAction::SucceedAndPassDown,
        PnpAction::Start,
        PnpAction::StopAndPassDown,
        PnpAction::Remove,
    ];

    fn position(steps: &[PnpStep], step: PnpStep) -> Option<usize> {
        steps.iter().position(|&s| s == step)
    }

    fn count(steps: &[PnpStep], step: PnpStep) -> usize {
        steps.iter().filter(|&&s| s == step).count()
    }

    #[test]
    fn every_action_passes_down_once_and_releases_the_lock_once() {
        for action in ACTIONS {
            let steps = action.steps();
            assert_eq!(
                count(steps, PnpStep::PassDown) + count(steps, PnpStep::PassDownAndWait),
                1,
                "{action:?}"
            );
            let releases = count(steps, PnpStep::ReleaseRemoveLock)
                + count(steps, PnpStep::ReleaseRemoveLockAndWait);
            assert_eq!(
                releases, 1,
                "{action:?}: the entry acquisition is released once"
            );
        }
    }

    #[test]
    fn the_irp_is_not_touched_after_it_was_passed_down_or_completed() {
        for action in ACTIONS {
            let steps = action.steps();
            let gone =
                position(steps, PnpStep::PassDown).or_else(|| position(steps, PnpStep::Complete));
            let Some(gone) = gone else {
                panic!("{action:?} neither passes down nor completes");
            };
            for &step in steps.get(gone + 1..).unwrap_or_default() {
                assert!(
                    matches!(
                        step,
                        PnpStep::ReleaseRemoveLock
                            | PnpStep::ReleaseRemoveLockAndWait
                            | PnpStep::DetachFromLower
                            | PnpStep::DeleteDevice
                    ),
                    "{action:?}: {step:?} after the IRP left"
                );
            }
            if let Some(success) = position(steps, PnpStep::SetSuccess) {
                assert!(success < gone, "{action:?}: status set after PassDown");
            }
        }
        assert_eq!(
            position(PnpAction::PassDown.steps(), PnpStep::SetSuccess),
            None
        );
        assert!(position(PnpAction::SucceedAndPassDown.steps(), PnpStep::SetSuccess).is_some());
    }

    #[test]
    fn start_starts_the_client_only_after_the_lower_drivers_started_the_device() {
        let steps = PnpAction::Start.steps();
        assert_eq!(
            steps,
            [
                PnpStep::PassDownAndWait,
                PnpStep::StartClient,
                PnpStep::Complete,
                PnpStep::ReleaseRemoveLock,
            ]
        );
        assert_eq!(action(PnpMinor::StartDevice.code()), PnpAction::Start);
        for action in ACTIONS {
            assert_eq!(
                position(action.steps(), PnpStep::StartClient).is_some(),
                action == PnpAction::Start,
                "{action:?}"
            );
        }
    }

    #[test]
    fn stop_surprise_removal_and_remove_stop_the_client_before_passing_down() {
        for minor in [
            PnpMinor::StopDevice,
            PnpMinor::SurpriseRemoval,
            PnpMinor::RemoveDevice,
        ] {
            let steps = action(minor.code()).steps();
            assert_eq!(steps.first(), Some(&PnpStep::StopClient), "{minor:?}");
            assert_eq!(count(steps, PnpStep::StopClient), 1, "{minor:?}");
        }
        for action in [
            PnpAction::PassDown,
            PnpAction::SucceedAndPassDown,
            PnpAction::Start,
        ] {
            assert_eq!(
                position(action.steps(), PnpStep::StopClient),
                None,
                "{action:?}"
            );
        }
    }

    #[test]
    fn remove_passes_down_then_waits_then_detaches_and_deletes_last() {
        let steps = PnpAction::Remove.steps();
        let wait = position(steps, PnpStep::ReleaseRemoveLockAndWait);
        let passed = position(steps, PnpStep::PassDown);
        let detach = position(steps, PnpStep::DetachFromLower);
        assert!(passed.is_some() && passed < wait, "{steps:?}");
        assert!(wait < detach, "{steps:?}");
        assert_eq!(steps.last(), Some(&PnpStep::DeleteDevice));
        assert_eq!(count(steps, PnpStep::DeleteDevice), 1);
        assert!(position(steps, PnpStep::SetSuccess).is_some());
    }

    #[test]
    fn only_remove_detaches_or_deletes_or_waits() {
        for action in ACTIONS.into_iter().filter(|&a| a != PnpAction::Remove) {
            for step in [
                PnpStep::DetachFromLower,
                PnpStep::DeleteDevice,
                PnpStep::ReleaseRemoveLockAndWait,
            ] {
                assert_eq!(position(action.steps(), step), None, "{action:?}: {step:?}");
            }
        }
    }

    #[test]
    fn unknown_minors_pass_down_untouched() {
        // IRP_MN_QUERY_DEVICE_RELATIONS, QUERY_INTERFACE, QUERY_CAPABILITIES, QUERY_ID,
        // QUERY_PNP_DEVICE_STATE, DEVICE_USAGE_NOTIFICATION, and codes beyond the last one.
        for code in [0x07, 0x08, 0x09, 0x13, 0x14, 0x16, 0x18, 0x19, 0xFF] {
            assert_eq!(action(code), PnpAction::PassDown, "{code:#x}");
        }
    }
}
