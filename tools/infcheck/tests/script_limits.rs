//! `scripts/windows/Set-WskechoParameters.ps1` checks values before writing them; its limits
//! must be the driver's (`crates/wsk-client/src/config.rs`), or it would refuse valid values or accept
//! values that make `DriverEntry` fail. `Get-WskechoStatus.ps1` shows every value the driver
//! reads.

use wskecho_infcheck::core_config::driver;

fn read(name: &str) -> String {
    let path = format!(
        "{}/../../scripts/windows/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn script() -> String {
    read("Set-WskechoParameters.ps1")
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

#[test]
fn the_status_script_shows_every_driver_value() {
    let status = read("Get-WskechoStatus.ps1");
    let list = status
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("foreach ($name in 'ListenAddresses'"))
        .expect("the Parameters loop of Get-WskechoStatus.ps1");
    for name in driver::ValueName::ALL {
        assert!(
            list.contains(&format!("'{}'", name.as_str())),
            "Get-WskechoStatus.ps1 does not show {name}: {list}"
        );
    }
    assert!(
        list.contains("'PnpDevice'"),
        "Get-WskechoStatus.ps1 does not show PnpDevice: {list}"
    );
}
