//! One emulated machine: pool, NMR, WSK subsystem and the loaded driver, with the report a
//! run ends with. Used by the CLI (`main.rs`) and the tests.

use std::{
    fmt::Write as _,
    io,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use wsk_client::{
    config::{Config, ConfigBuilder, ValueName},
    handler::Service,
    stats::StatsSnapshot,
};
use wsk_primitives::{platform::Level, status::NtStatus};

use crate::{
    contract::Contract,
    driver::{Driver, StartFailure, Subsystem, UnloadReport},
    nmr::{DetachCause, Nmr, NmrMode},
    pool::{Outstanding, Pool},
    wsk::{Wsk, WskMode},
};

/// How to set up a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The driver's configuration (as read from the registry on Windows), validated by the
    /// core's own rules.
    pub config: Config,
    builder: ConfigBuilder,
    /// How the driver serves each accepted connection.
    pub service: Service,
    /// NMR timing choices and wait bound.
    pub nmr: NmrMode,
    /// WSK completion timing and worker count.
    pub wsk: WskMode,
    /// Most verbose driver log level written to stderr (`None`: none; problems are still
    /// kept for start-up error messages).
    pub verbosity: Option<Level>,
}

impl Options {
    /// The driver's defaults, serving `service` on `listen` (`ADDR:PORT` texts; port 0
    /// allowed), with completions on workers and inline, and driver warnings on stderr.
    ///
    /// # Errors
    /// The core's configuration validation refused an address (the message says why).
    pub fn new(service: Service, listen: &[&str]) -> Result<Self, String> {
        let mut builder = ConfigBuilder::new().allow_ephemeral_ports();
        builder
            .set_listen_addresses(listen.iter().copied())
            .map_err(|e| format!("invalid --listen: {e}"))?;
        Ok(Self {
            config: builder.build(),
            builder,
            service,
            nmr: NmrMode::default(),
            wsk: WskMode::default(),
            verbosity: Some(Level::Warning),
        })
    }

    fn with(mut self, name: ValueName, flag: &str, value: u32) -> Result<Self, String> {
        self.builder
            .set_dword(name, value)
            .map_err(|e| format!("invalid {flag}: {e}"))?;
        self.config = self.builder.build();
        Ok(self)
    }

    /// Sets `MaxConnections`.
    ///
    /// # Errors
    /// Out of the core's range.
    pub fn with_max_connections(self, value: u32) -> Result<Self, String> {
        self.with(ValueName::MaxConnections, "--max-connections", value)
    }

    /// Sets `BufferSize`.
    ///
    /// # Errors
    /// Out of the core's range.
    pub fn with_buffer_size(self, value: u32) -> Result<Self, String> {
        self.with(ValueName::BufferSize, "--buffer-size", value)
    }

    /// Sets `MaxConnectionsPerAddress` (0: no limit).
    ///
    /// # Errors
    /// Out of the core's range.
    pub fn with_max_connections_per_address(self, value: u32) -> Result<Self, String> {
        self.with(
            ValueName::MaxConnectionsPerAddress,
            "--max-connections-per-address",
            value,
        )
    }

    /// Sets `IdleTimeout` in seconds (0: off).
    ///
    /// # Errors
    /// Out of the core's range.
    pub fn with_idle_timeout(self, value: u32) -> Result<Self, String> {
        self.with(ValueName::IdleTimeout, "--idle-timeout", value)
    }

    /// Sets `NoDelay` (0: Nagle's algorithm on, 1: `TCP_NODELAY`).
    ///
    /// # Errors
    /// Out of the core's range.
    pub fn with_no_delay(self, value: u32) -> Result<Self, String> {
        self.with(ValueName::NoDelay, "--no-delay", value)
    }
}

/// Why the listeners did not all open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The end-of-run report (the CLI's last stdout line).
#[derive(Clone, Debug)]
pub struct Report {
    /// How long Unload took, in milliseconds (rounded down).
    pub unload_ms: u128,
    /// How long the driver's Unload took, precisely (not the emulator's shutdown after it).
    pub unload_duration: Duration,
    /// `"success"` or `"pending"`: what `ClientDetachProvider` returned during Unload;
    /// `"none"` if no binding was attached then.
    pub detach: &'static str,
    /// Connections the driver accepted.
    pub accepted: u64,
    /// Connections the driver refused.
    pub refused: u64,
    /// Of `refused`: refused because the peer's address held `MaxConnectionsPerAddress`.
    pub refused_per_address: u64,
    /// Bytes the driver sent back.
    pub bytes_sent: u64,
    /// Pool bytes still allocated after Unload (and after the driver's state was dropped).
    pub pool_outstanding_bytes: usize,
    /// Most pool bytes allocated at once.
    pub pool_peak_bytes: usize,
    /// Leaks, per tag and allocation site.
    pub leaks: Vec<Outstanding>,
    /// Contract violations, in order.
    pub violations: Vec<String>,
}

impl Report {
    /// No violation and nothing leaked.
    #[must_use]
    pub const fn clean(&self) -> bool {
        self.violations.is_empty() && self.pool_outstanding_bytes == 0
    }

    /// The report as one line of JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"unload_ms\":{},\"detach\":\"{}\",\"accepted\":{},\"refused\":{},\"refused_per_address\":{},\"bytes_sent\":{},\
             \"pool_outstanding_bytes\":{},\"pool_peak_bytes\":{},\"contract_violations\":{},\"violations\":[",
            self.unload_ms,
            self.detach,
            self.accepted,
            self.refused,
            self.refused_per_address,
            self.bytes_sent,
            self.pool_outstanding_bytes,
            self.pool_peak_bytes,
            self.violations.len()
        );
        for (n, violation) in self.violations.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            push_json_string(&mut out, violation);
        }
        out.push_str("],\"leaks\":[");
        for (n, leak) in self.leaks.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            push_json_string(&mut out, &leak.to_string());
        }
        out.push_str("]}");
        out
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A running emulated machine with the driver loaded.
pub struct Harness {
    contract: Arc<Contract>,
    pool: Pool,
    wsk: Subsystem,
    nmr: Nmr<Subsystem>,
    driver: Option<Driver>,
    /// Set when `DriverEntry` failed (then `driver` is `None`).
    start_failure: Option<StartFailure>,
    expected_listeners: usize,
    /// Problems logged before the current attachment began (start-up error messages name
    /// only later ones).
    problems_mark: std::sync::atomic::AtomicUsize,
}

impl Harness {
    /// Boots the machine: starts the WSK subsystem, registers it with the NMR, and loads the
    /// driver (`DriverEntry`). Returns before the listeners are open: see
    /// [`Harness::wait_listening`].
    ///
    /// # Errors
    /// The host would not start the subsystem's threads or poller.
    pub fn start(options: Options) -> io::Result<Self> {
        Self::start_with(options, |_| {})
    }

    /// Like [`Harness::start`], running `before_load` (e.g. to arm fault injection) after the
    /// WSK subsystem registered and before `DriverEntry`.
    ///
    /// # Errors
    /// As [`Harness::start`].
    #[allow(clippy::needless_pass_by_value)] // Options are consumed by the run, like `start`'s.
    pub fn start_with(options: Options, before_load: impl FnOnce(&Self)) -> io::Result<Self> {
        let contract = Arc::new(Contract::new());
        let pool = Pool::new(Arc::clone(&contract), options.verbosity);
        let wsk = Wsk::start(Arc::clone(&contract), pool.clone(), options.wsk)?;
        let nmr = Nmr::new(Arc::clone(&contract), options.nmr);
        nmr.register_provider(Arc::new(wsk.clone()));
        let expected_listeners = options.config.endpoint_count();
        let mut harness = Self {
            contract,
            pool,
            wsk,
            nmr,
            driver: None,
            start_failure: None,
            expected_listeners,
            problems_mark: std::sync::atomic::AtomicUsize::new(0),
        };
        before_load(&harness);
        match Driver::load(
            options.config,
            options.service,
            harness.pool.clone(),
            harness.nmr.clone(),
            Arc::clone(&harness.contract),
            options.nmr.wait_timeout,
        ) {
            Ok(driver) => harness.driver = Some(driver),
            Err(failure) => harness.start_failure = Some(failure),
        }
        Ok(harness)
    }

    /// The violation recorder.
    #[must_use]
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// The accounting pool (the driver's `Platform`).
    #[must_use]
    pub const fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The emulated WSK subsystem.
    #[must_use]
    pub const fn wsk(&self) -> &Subsystem {
        &self.wsk
    }

    /// The emulated NMR.
    #[must_use]
    pub const fn nmr(&self) -> &Nmr<Subsystem> {
        &self.nmr
    }

    /// `DriverEntry`'s status: `STATUS_SUCCESS`, or why it failed (then no driver is loaded).
    #[must_use]
    pub fn driver_entry_status(&self) -> NtStatus {
        self.start_failure
            .as_ref()
            .map_or(NtStatus::SUCCESS, |failure| failure.status)
    }

    /// The loaded driver (until [`Harness::unload`]).
    #[must_use]
    pub const fn driver(&self) -> Option<&Driver> {
        self.driver.as_ref()
    }

    /// Waits until every configured listener is listening, and returns their local addresses
    /// (real ports), in configuration order.
    ///
    /// # Errors
    /// A listener failed (the message names the address and status), or `timeout` passed.
    pub fn wait_listening(&self, timeout: Duration) -> Result<Vec<SocketAddr>, StartError> {
        let deadline = Instant::now() + timeout;
        loop {
            let failures = self.wsk.setup_failures();
            if let Some((addr, status)) = failures.first() {
                return Err(StartError(format!(
                    "cannot listen on {addr}: {}",
                    describe(*status)
                )));
            }
            if let Some(failure) = &self.start_failure {
                return Err(StartError(format!(
                    "DriverEntry failed: {}",
                    describe(failure.status)
                )));
            }
            let listening = self.wsk.listening();
            if listening.len() >= self.expected_listeners {
                return Ok(listening);
            }
            if Instant::now() >= deadline {
                let since = self.problems_mark.load(std::sync::atomic::Ordering::SeqCst);
                let problems = self.pool.problems_since(since);
                return Err(StartError(problems.first().map_or_else(
                    || {
                        format!(
                            "the driver opened {} of {} listeners within {timeout:?}",
                            listening.len(),
                            self.expected_listeners
                        )
                    },
                    |line| format!("the driver did not open its listeners: {line}"),
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The WSK subsystem deregisters (as if it were going away) and the call waits until its
    /// bindings are gone. Returns `false` on timeout (also a recorded violation).
    #[must_use]
    pub fn deregister_provider(&self) -> bool {
        self.nmr.deregister_provider();
        self.nmr.wait_provider_deregistered()
    }

    /// The WSK subsystem registers again (after [`Harness::deregister_provider`] returned
    /// `true`; while a deregistration is still in progress this does nothing); the driver
    /// attaches to it.
    pub fn register_provider(&self) {
        self.problems_mark.store(
            self.pool.problem_count(),
            std::sync::atomic::Ordering::SeqCst,
        );
        self.nmr.register_provider(Arc::new(self.wsk.clone()));
    }

    /// Unloads the driver (`sc stop`), drops its state, stops the subsystem, and reports.
    #[must_use]
    pub fn unload(mut self) -> Report {
        let unload = match (self.driver.take(), self.start_failure.take()) {
            (Some(driver), _) => driver.unload(),
            (None, Some(failure)) => *failure.shutdown,
            (None, None) => UnloadReport {
                duration: Duration::ZERO,
                deregister_status: NtStatus::SUCCESS,
                stats: StatsSnapshot::default(),
            },
        };
        self.finish(&unload)
    }

    fn finish(self, unload: &UnloadReport) -> Report {
        let detach = self
            .nmr
            .detach_records()
            .iter()
            .filter(|r| r.cause == DetachCause::ClientDeregistered)
            .fold("none", |seen, r| {
                if r.status == NtStatus::PENDING || seen == "pending" {
                    "pending"
                } else {
                    "success"
                }
            });
        self.wsk.stop();
        if self.wsk.open_sockets() != 0 {
            self.contract.violation(format!(
                "{} WSK socket(s) open after unload",
                self.wsk.open_sockets()
            ));
        }
        let leaks = self.pool.outstanding();
        Report {
            unload_ms: unload.duration.as_millis(),
            unload_duration: unload.duration,
            detach,
            accepted: unload.stats.accepted,
            refused: unload.stats.refused,
            refused_per_address: unload.stats.refused_per_address,
            bytes_sent: unload.stats.bytes_sent,
            pool_outstanding_bytes: self.pool.outstanding_bytes(),
            pool_peak_bytes: self.pool.peak_bytes(),
            leaks,
            violations: self.contract.violations(),
        }
    }
}

/// A status as `NAME (0x...)` for the statuses a start-up can fail with.
#[must_use]
pub fn describe(status: NtStatus) -> String {
    let name = match status {
        NtStatus::ADDRESS_ALREADY_EXISTS => {
            "address already in use (STATUS_ADDRESS_ALREADY_EXISTS)"
        }
        NtStatus::INSUFFICIENT_RESOURCES => {
            "insufficient resources (STATUS_INSUFFICIENT_RESOURCES)"
        }
        NtStatus::INVALID_PARAMETER => "invalid parameter (STATUS_INVALID_PARAMETER)",
        crate::wsk::ACCESS_DENIED => "access denied (STATUS_ACCESS_DENIED)",
        crate::wsk::INVALID_ADDRESS_COMPONENT => {
            "address not available on this host (STATUS_INVALID_ADDRESS_COMPONENT)"
        }
        _ => "failed",
    };
    format!("{name}, {status}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Outstanding, Report};

    #[test]
    fn the_report_is_one_line_of_valid_json_with_escaped_messages() {
        let report = Report {
            unload_ms: 12,
            unload_duration: Duration::from_micros(12_345),
            detach: "pending",
            accepted: 3,
            refused: 1,
            refused_per_address: 1,
            bytes_sent: 4096,
            pool_outstanding_bytes: 64,
            pool_peak_bytes: 1024,
            leaks: vec![Outstanding {
                tag: "WEcn".into(),
                site: "crates/wsk-client/src/socket.rs:1:1".into(),
                blocks: 1,
                bytes: 64,
            }],
            violations: vec!["a \"quoted\" \\ message\nwith a newline".into()],
        };
        let line = report.to_json();
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(value["unload_ms"], 12);
        assert_eq!(value["detach"], "pending");
        assert_eq!(value["refused_per_address"], 1);
        assert_eq!(value["contract_violations"], 1);
        assert_eq!(
            value["violations"][0],
            "a \"quoted\" \\ message\nwith a newline"
        );
        assert_eq!(value["pool_outstanding_bytes"], 64);
        assert!(
            value["leaks"][0]
                .as_str()
                .is_some_and(|l| l.contains("WEcn"))
        );
        assert!(!report.clean());
    }
}
