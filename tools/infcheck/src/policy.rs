//! What wskecho's INF files must say: service name, binary, service configuration, and the
//! `Parameters` values with their defaults and limits.

/// The registry value types the driver reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParameterKind {
    /// `REG_DWORD`.
    Dword {
        /// The driver's default, which the INF must write.
        default: u32,
    },
    /// `REG_MULTI_SZ`.
    MultiSz {
        /// The driver's default strings, in order, which the INF must write.
        default: Vec<String>,
    },
}

/// One value under `Services\<name>\Parameters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    /// Value name.
    pub name: &'static str,
    /// Type, default and limits.
    pub kind: ParameterKind,
}

/// What the INF files of one driver must declare.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Service (and driver object) name.
    pub service_name: &'static str,
    /// Driver image file name.
    pub binary_name: &'static str,
    /// Required `ServiceType` (1 = `SERVICE_KERNEL_DRIVER`).
    pub service_type: u32,
    /// Required `StartType` (3 = `SERVICE_DEMAND_START`).
    pub start_type: u32,
    /// Required `ErrorControl` (1 = `SERVICE_ERROR_NORMAL`).
    pub error_control: u32,
    /// Hardware ID a root-enumerated (device-style) INF must install on.
    pub hardware_id: &'static str,
    /// Architecture decoration the package is built for (`NTamd64`).
    pub architecture: &'static str,
    /// The values the INF writes under `Parameters`.
    pub parameters: Vec<Parameter>,
}

/// `SERVICE_KERNEL_DRIVER`.
pub const SERVICE_KERNEL_DRIVER: u32 = 1;
/// `SERVICE_DEMAND_START`: loaded by `sc start` (or by `PnP` for a device), never at boot.
pub const SERVICE_DEMAND_START: u32 = 3;
/// `SERVICE_ERROR_NORMAL`: a load failure is logged, boot goes on.
pub const SERVICE_ERROR_NORMAL: u32 = 1;

impl Policy {
    /// wskecho's policy. The parameters and their defaults come from the driver's
    /// `crates/wsk-client/src/config.rs` (see [`crate::core_config`]), so an INF that drifts from the
    /// driver fails the check.
    #[must_use]
    pub fn wskecho() -> Self {
        Self {
            service_name: "wskecho",
            binary_name: "wskecho.sys",
            service_type: SERVICE_KERNEL_DRIVER,
            start_type: SERVICE_DEMAND_START,
            error_control: SERVICE_ERROR_NORMAL,
            hardware_id: "Root\\wskecho",
            architecture: "NTamd64",
            parameters: crate::core_config::parameters(),
        }
    }

    /// The expected parameter called `name`, ignoring case (registry names are).
    #[must_use]
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters
            .iter()
            .find(|parameter| parameter.name.eq_ignore_ascii_case(name))
    }
}
