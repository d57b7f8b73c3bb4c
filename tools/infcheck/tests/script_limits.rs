//! `scripts/windows/Set-WskechoParameters.ps1` checks values before writing them; its limits
//! must be the driver's (`src/core/config.rs`), or it would refuse valid values or accept
//! values that make `DriverEntry` fail.

use wskecho_infcheck::core_config::driver;

fn script() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/windows/Set-WskechoParameters.ps1"
    );
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The text after `key =` on the script's line that starts with `key`.
fn setting(script: &str, key: &str) -> String {
    script
        .lines()
        .map(str::trim)
        .find_map(|line| {
            line.strip_prefix(key)?
                .trim_start()
                .strip_prefix('=')
                .map(str::trim)
        })
        .unwrap_or_else(|| panic!("no `{key} = ...` line in the script"))
        .to_owned()
}

/// `@(low, high)` → (low, high).
fn range(text: &str) -> (u64, u64) {
    let inner = text
        .strip_prefix("@(")
        .and_then(|t| t.strip_suffix(')'))
        .expect("@(low, high)");
    let (low, high) = inner.split_once(',').expect("two numbers");
    (
        low.trim().parse().expect("number"),
        high.trim().parse().expect("number"),
    )
}

#[test]
fn script_limits_are_the_drivers() {
    let script = script();
    assert_eq!(
        setting(&script, "ListenAddressesMax").parse::<usize>().ok(),
        Some(driver::MAX_ENDPOINTS)
    );
    assert_eq!(
        range(&setting(&script, "MaxConnections")),
        (1, u64::from(driver::MAX_CONNECTIONS_LIMIT))
    );
    assert_eq!(
        range(&setting(&script, "BufferSize")),
        (
            u64::from(driver::MIN_BUFFER_SIZE),
            u64::from(driver::MAX_BUFFER_SIZE)
        )
    );
    assert_eq!(
        range(&setting(&script, "MaxConnectionsPerAddress")),
        (0, u64::from(driver::MAX_CONNECTIONS_LIMIT))
    );
    assert_eq!(
        range(&setting(&script, "IdleTimeout")),
        (0, u64::from(driver::MAX_IDLE_TIMEOUT))
    );
    assert_eq!(range(&setting(&script, "NoDelay")), (0, 1));
}
