//! WSK versions: `MAKE_WSK_VERSION(major, minor) = major << 8 | minor` (wsk.h), and the range a
//! provider supports (`WSK_PROVIDER_CHARACTERISTICS { HighestVersion, LowestVersion }`).

/// `MAKE_WSK_VERSION(major, minor)`.
#[must_use]
pub const fn make_wsk_version(major: u8, minor: u8) -> u16 {
    (major as u16) << 8 | minor as u16
}

/// The WSK version the driver uses: 1.0.
pub const WSK_VERSION_1_0: u16 = make_wsk_version(1, 0);

/// A provider's supported range (`WSK_PROVIDER_CHARACTERISTICS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WskVersionRange {
    /// `HighestVersion`.
    pub highest: u16,
    /// `LowestVersion`.
    pub lowest: u16,
}

impl WskVersionRange {
    /// Whether `version` is inside the range. The encoding orders versions like
    /// (major, minor) pairs, so plain comparison is right.
    #[must_use]
    pub const fn covers(self, version: u16) -> bool {
        self.lowest <= version && version <= self.highest
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{WSK_VERSION_1_0, WskVersionRange, make_wsk_version};

    #[test]
    fn version_encoding_and_range() {
        assert_eq!(WSK_VERSION_1_0, 0x0100);
        assert_eq!(make_wsk_version(2, 3), 0x0203);
        let r = |lowest, highest| WskVersionRange { highest, lowest };
        assert!(r(0x0100, 0x0100).covers(WSK_VERSION_1_0));
        assert!(r(0x0100, 0x0200).covers(WSK_VERSION_1_0));
        assert!(!r(0x0101, 0x0200).covers(WSK_VERSION_1_0));
        assert!(!r(0x0000, 0x00FF).covers(WSK_VERSION_1_0));
    }
}
