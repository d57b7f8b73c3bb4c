//! The driver's configuration contract as the INF must reflect it: value names, types,
//! defaults and limits of `Services\wskecho\Parameters` (see `src/core/config.rs`).

use crate::policy::{Parameter, ParameterKind};

/// The `Parameters` values the driver reads.
#[must_use]
pub fn parameters() -> Vec<Parameter> {
    vec![
        Parameter {
            name: "ListenAddresses",
            kind: ParameterKind::MultiSz {
                default: vec!["0.0.0.0:40007".to_owned(), "[::]:40007".to_owned()],
                max_count: 16,
            },
        },
        Parameter {
            name: "MaxConnections",
            kind: ParameterKind::Dword {
                default: 1024,
                min: 1,
                max: 65536,
            },
        },
        Parameter {
            name: "BufferSize",
            kind: ParameterKind::Dword {
                default: 16384,
                min: 512,
                max: 1_048_576,
            },
        },
    ]
}

/// Whether `text` is a listen address the driver accepts: `A.B.C.D:PORT` or `[IPv6]:PORT`.
#[must_use]
pub fn is_listen_address(text: &str) -> bool {
    text.parse::<std::net::SocketAddr>()
        .is_ok_and(|address| address.port() != 0)
}
