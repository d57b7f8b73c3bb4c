//! NTSTATUS values the core produces or interprets.
//!
//! The core is platform-neutral, but NTSTATUS is just a 32-bit number: keeping the real values
//! lets the kernel adapter pass them through unchanged and the logs show what `WinDbg` shows.
//! Values: [MS-ERREF] 2.3.1 "NTSTATUS Values" and `ntstatus.h`.

use ::core::fmt;

/// A Windows NTSTATUS code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NtStatus(pub i32);

#[allow(clippy::cast_possible_wrap)] // NTSTATUS values are defined as unsigned hex literals.
impl NtStatus {
    /// `STATUS_SUCCESS`.
    pub const SUCCESS: Self = Self(0);
    /// `STATUS_PENDING`: the operation (or the detach) completes later.
    pub const PENDING: Self = Self(0x0000_0103);
    /// `STATUS_UNSUCCESSFUL`.
    pub const UNSUCCESSFUL: Self = Self(0xC000_0001_u32 as i32);
    /// `STATUS_INVALID_PARAMETER`: bad configuration.
    pub const INVALID_PARAMETER: Self = Self(0xC000_000D_u32 as i32);
    /// `STATUS_INSUFFICIENT_RESOURCES`: an allocation failed.
    pub const INSUFFICIENT_RESOURCES: Self = Self(0xC000_009A_u32 as i32);
    /// `STATUS_NOINTERFACE`: the provider's WSK version range excludes 1.0.
    pub const NOINTERFACE: Self = Self(0xC000_02B9_u32 as i32);
    /// `STATUS_REQUEST_NOT_ACCEPTED`: refuse an incoming connection in the accept event.
    pub const REQUEST_NOT_ACCEPTED: Self = Self(0xC000_00D0_u32 as i32);
    /// `STATUS_CANCELLED`: an operation cancelled (by close).
    pub const CANCELLED: Self = Self(0xC000_0120_u32 as i32);
    /// `STATUS_CONNECTION_RESET`: the peer reset the connection.
    pub const CONNECTION_RESET: Self = Self(0xC000_020D_u32 as i32);
    /// `STATUS_CONNECTION_ABORTED`.
    pub const CONNECTION_ABORTED: Self = Self(0xC000_0241_u32 as i32);
    /// `STATUS_ADDRESS_ALREADY_EXISTS`: bind to a port already in use.
    pub const ADDRESS_ALREADY_EXISTS: Self = Self(0xC000_020A_u32 as i32);
    /// `STATUS_INVALID_DEVICE_STATE`: a call refused because the binding is detaching.
    pub const INVALID_DEVICE_STATE: Self = Self(0xC000_0184_u32 as i32);
    /// `STATUS_DEVICE_NOT_READY`.
    pub const DEVICE_NOT_READY: Self = Self(0xC000_00A3_u32 as i32);

    /// `NT_SUCCESS(status)`: success and informational codes (severity bits 00 or 01).
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// The status as the unsigned value logs and `WinDbg` show.
    #[must_use]
    #[allow(clippy::cast_sign_loss)]
    pub const fn as_u32(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010X}", self.as_u32())
    }
}

impl fmt::Display for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::NtStatus;

    #[test]
    fn nt_success_follows_the_severity_bits() {
        assert!(NtStatus::SUCCESS.is_success());
        assert!(NtStatus::PENDING.is_success());
        assert!(!NtStatus::INVALID_PARAMETER.is_success());
        assert!(!NtStatus::CONNECTION_RESET.is_success());
    }

    #[test]
    fn displays_as_windbg_hex() {
        extern crate std;
        assert_eq!(
            std::format!("{}", NtStatus::INSUFFICIENT_RESOURCES),
            "0xC000009A"
        );
        assert_eq!(std::format!("{:?}", NtStatus::PENDING), "0x00000103");
    }
}
