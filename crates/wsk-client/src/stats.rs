//! Counters, kept in the client (in the wskecho sample, read them in `WinDbg` with
//! `dx wskecho!WSKECHO_GLOBALS.client.value.value.value.stats`, docs/windbg.md). Relaxed
//! atomics: they order nothing.

use wsk_primitives::sync::{Ordering, StatCounter};

/// The driver's counters (`#[repr(C)]` so a debugger sees plain 64-bit fields in order).
#[repr(C)]
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: StatCounter,
    /// Connections refused in the accept callback, for any reason (the sum of the four
    /// `refused_*` counters below).
    pub refused: StatCounter,
    /// Connections open now.
    pub active: StatCounter,
    /// Bytes sent to peers by the connections' handlers (the echo service: bytes sent).
    pub bytes_sent: StatCounter,
    /// Listening sockets open now.
    pub listeners_open: StatCounter,
    /// Failures logged as errors (a listener that could not open, a failed allocation, a
    /// provider call that failed unexpectedly).
    pub failures: StatCounter,
    /// Of `refused`: the binding was detaching.
    pub refused_detaching: StatCounter,
    /// Of `refused`: `MaxConnections` connections were open.
    pub refused_max_connections: StatCounter,
    /// Of `refused`: the peer's address already held `MaxConnectionsPerAddress` connections.
    pub refused_per_address: StatCounter,
    /// Of `refused`: no memory or I/O resources for the connection.
    pub refused_no_resources: StatCounter,
    /// Connections closed because they made no progress for `IdleTimeout` (silent or stalled
    /// peers, graceful disconnects that did not complete).
    pub idle_closed: StatCounter,
    /// Attempts to reopen a listener that failed (each one after its backoff).
    pub listener_reopens: StatCounter,
    /// Configured listeners without a socket, waiting for their next reopen attempt (as the
    /// binding's last tick left them: one it reopened is not counted).
    pub listeners_down: StatCounter,
}

/// Why a connection was refused in the accept callback (which `refused_*` counter it bumps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The binding was detaching.
    Detaching,
    /// `MaxConnections` connections were open.
    MaxConnections,
    /// The peer's address held `MaxConnectionsPerAddress` connections.
    PerAddress,
    /// No memory or I/O resources.
    NoResources,
}

/// A copy of the counters at one moment (each read on its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`Stats::accepted`].
    pub accepted: u64,
    /// See [`Stats::refused`].
    pub refused: u64,
    /// See [`Stats::active`].
    pub active: u64,
    /// See [`Stats::bytes_sent`].
    pub bytes_sent: u64,
    /// See [`Stats::listeners_open`].
    pub listeners_open: u64,
    /// See [`Stats::failures`].
    pub failures: u64,
    /// See [`Stats::refused_detaching`].
    pub refused_detaching: u64,
    /// See [`Stats::refused_max_connections`].
    pub refused_max_connections: u64,
    /// See [`Stats::refused_per_address`].
    pub refused_per_address: u64,
    /// See [`Stats::refused_no_resources`].
    pub refused_no_resources: u64,
    /// See [`Stats::idle_closed`].
    pub idle_closed: u64,
    /// See [`Stats::listener_reopens`].
    pub listener_reopens: u64,
    /// See [`Stats::listeners_down`].
    pub listeners_down: u64,
}

/// One log line (at most ~220 characters, within the kernel's 256-byte lines).
impl ::core::fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        write!(
            f,
            "accepted {}, refused {} (detaching {}, max {}, per address {}, no resources {}), \
             active {}, bytes sent {}, idle closed {}, listeners open {} (down {}, reopens {}), \
             failures {}",
            self.accepted,
            self.refused,
            self.refused_detaching,
            self.refused_max_connections,
            self.refused_per_address,
            self.refused_no_resources,
            self.active,
            self.bytes_sent,
            self.idle_closed,
            self.listeners_open,
            self.listeners_down,
            self.listener_reopens,
            self.failures
        )
    }
}

impl Stats {
    /// All zero.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            accepted: StatCounter::new(0),
            refused: StatCounter::new(0),
            active: StatCounter::new(0),
            bytes_sent: StatCounter::new(0),
            listeners_open: StatCounter::new(0),
            failures: StatCounter::new(0),
            refused_detaching: StatCounter::new(0),
            refused_max_connections: StatCounter::new(0),
            refused_per_address: StatCounter::new(0),
            refused_no_resources: StatCounter::new(0),
            idle_closed: StatCounter::new(0),
            listener_reopens: StatCounter::new(0),
            listeners_down: StatCounter::new(0),
        }
    }

    /// Counts a refused connection: the total and its reason's counter.
    pub fn refuse(&self, why: Refusal) {
        Self::bump(&self.refused);
        Self::bump(match why {
            Refusal::Detaching => &self.refused_detaching,
            Refusal::MaxConnections => &self.refused_max_connections,
            Refusal::PerAddress => &self.refused_per_address,
            Refusal::NoResources => &self.refused_no_resources,
        });
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &StatCounter, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to `counter`.
    pub fn bump(counter: &StatCounter) {
        Self::add(counter, 1);
    }

    /// Subtracts one from a gauge, never below zero.
    pub fn drop_one(counter: &StatCounter) {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    /// Reads every counter.
    #[must_use]
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &StatCounter| c.load(Ordering::Relaxed);
        StatsSnapshot {
            accepted: get(&self.accepted),
            refused: get(&self.refused),
            active: get(&self.active),
            bytes_sent: get(&self.bytes_sent),
            listeners_open: get(&self.listeners_open),
            failures: get(&self.failures),
            refused_detaching: get(&self.refused_detaching),
            refused_max_connections: get(&self.refused_max_connections),
            refused_per_address: get(&self.refused_per_address),
            refused_no_resources: get(&self.refused_no_resources),
            idle_closed: get(&self.idle_closed),
            listener_reopens: get(&self.listener_reopens),
            listeners_down: get(&self.listeners_down),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Stats;

    #[test]
    fn counters_and_gauges() {
        let s = Stats::new();
        Stats::bump(&s.accepted);
        Stats::add(&s.bytes_sent, 10);
        Stats::bump(&s.active);
        Stats::drop_one(&s.active);
        Stats::drop_one(&s.active);
        let snap = s.snapshot();
        assert_eq!(
            (snap.accepted, snap.bytes_sent, snap.active),
            (1, 10, 0),
            "gauge saturates at 0"
        );
        s.refuse(super::Refusal::PerAddress);
        s.refuse(super::Refusal::PerAddress);
        s.refuse(super::Refusal::Detaching);
        let snap = s.snapshot();
        assert_eq!(
            (
                snap.refused,
                snap.refused_per_address,
                snap.refused_detaching,
                snap.refused_max_connections,
                snap.refused_no_resources
            ),
            (3, 2, 1, 0, 0),
            "the total and each reason"
        );
    }

    #[test]
    fn the_log_line_names_every_counter_and_fits_a_kernel_line() {
        extern crate std;
        use std::string::ToString;
        let line = super::StatsSnapshot {
            accepted: 1_000_000_000,
            bytes_sent: 1 << 50,
            listener_reopens: 3,
            ..super::StatsSnapshot::default()
        }
        .to_string();
        assert!(line.contains("accepted 1000000000,"), "{line}");
        assert!(line.contains("reopens 3), failures 0"), "{line}");
        // With a driver's prefix ("wskecho: ") and "unloading; counters: " in front, in the
        // kernel's 256-byte line.
        assert!(line.len() + 31 < 256, "{} bytes: {line}", line.len());
    }
}
