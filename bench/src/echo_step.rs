//! Drives the real client through echo cycles with the recording WSK double (part 2).
//!
//! [`Echo`] plays WSK on `wsk_client::testing::provider::World`, the double the unit tests and
//! the loom models use: it completes the pending operations one at a time, as IRP completion
//! routines would. Every call from the double into the client goes through one of the
//! `#[inline(never)]` entries [`core_setup`], [`core_step_received`], [`core_step_sent`] and
//! [`core_teardown`] (`World::set_client_entry`), so that callgrind can count exactly the
//! instructions executed inside them (`--toggle-collect`); the double's bookkeeping around
//! those calls is not counted. The double's and the platform's functions the client calls
//! (the trait methods of the test types, see [`is_test_double`]) run inside the entries too;
//! their cost is subtracted (reported separately), so what remains is the client's.
//!
//! The client asks for its socket runs with `Provider::schedule`; the double runs them right
//! after the completion or event that scheduled them, each through the current entry, as a
//! work item would run them after the completion routine returned. So a cycle's count
//! includes the work items' runs.
//!
//! One echo cycle ([`Echo::cycle`]): the pending receive completes with data, the client
//! issues the send; the send completes, the client issues the next receive.

use std::{fmt, sync::Arc};

use wsk_client::{
    client::Client,
    config::{ConfigBuilder, ValueName},
    testing::{
        TestPlatform,
        provider::{Call, Mode, Op, TestProvider, World},
    },
    wsk_version::{WSK_VERSION_1_0, WskVersionRange},
};
use wsk_primitives::{platform::Level, status::NtStatus};
use wskecho_echo::ECHO;

// The four entries have the same code: each has its own section, or LLVM's function merging
// would fold them into one symbol and callgrind could not toggle on each. The `black_box`
// after the call keeps it from being a tail jump, so the callee runs inside the entry.

/// The entry of calls that set up the binding, the listener or the connection.
#[inline(never)]
#[unsafe(link_section = ".text.wskecho_bench.core_setup")]
pub fn core_setup(call: &mut dyn FnMut()) {
    call();
    std::hint::black_box(());
}

/// The entry of the receive completion of an echo cycle and its work item (`core_step*`
/// counts the whole cycle).
#[inline(never)]
#[unsafe(link_section = ".text.wskecho_bench.core_step_received")]
pub fn core_step_received(call: &mut dyn FnMut()) {
    call();
    std::hint::black_box(());
}

/// The entry of the send completion of an echo cycle and its work item.
#[inline(never)]
#[unsafe(link_section = ".text.wskecho_bench.core_step_sent")]
pub fn core_step_sent(call: &mut dyn FnMut()) {
    call();
    std::hint::black_box(());
}

/// The entry of calls that tear the connection, listener and binding down.
#[inline(never)]
#[unsafe(link_section = ".text.wskecho_bench.core_teardown")]
pub fn core_teardown(call: &mut dyn FnMut()) {
    call();
    std::hint::black_box(());
}

/// Whether a function (callgrind's demangled name) belongs to the WSK/platform double.
///
/// Those are the double's functions the client calls: the trait methods of the test types and
/// their drop glue, and the attach's provider factory.
#[must_use]
pub fn is_test_double(function: &str) -> bool {
    const TYPES: [&str; 3] = [
        "wsk_client::testing::provider::calls::TestProvider",
        "wsk_client::testing::provider::calls::TestIo",
        "wsk_primitives::testing::TestPlatform",
    ];
    TYPES.iter().any(|ty| {
        function
            .strip_prefix('<')
            .is_some_and(|f| f.starts_with(ty) && f[ty.len()..].starts_with(" as "))
            || function
                .strip_prefix("core::ptr::drop_in_place<")
                .is_some_and(|f| f.strip_prefix(ty) == Some(">"))
    }) || (function.starts_with("wsk_client::testing::provider::")
        && function.ends_with("World>::new_provider"))
}

/// What went wrong while driving the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoError(pub String);

impl fmt::Display for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EchoError {}

fn fail<T>(what: impl Into<String>) -> Result<T, EchoError> {
    Err(EchoError(what.into()))
}

/// One accepted connection echoing through the real client (see the module documentation).
pub struct Echo {
    client: Box<Client<TestProvider>>,
    world: Arc<World>,
    /// The connection's socket I/O in the double.
    connection: usize,
    /// Bytes the receive completions reported, and the sends completed.
    received: u64,
    sent: u64,
    /// The byte the next received byte is (a running pattern).
    pattern: u8,
    torn_down: bool,
}

impl fmt::Debug for Echo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Echo")
            .field("received", &self.received)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// The listening endpoint of the bench configuration (never opened: the double does no I/O).
const LISTEN: &str = "127.0.0.1:7";

/// The WSK versions the double offers.
const VERSIONS: WskVersionRange = WskVersionRange {
    highest: WSK_VERSION_1_0,
    lowest: WSK_VERSION_1_0,
};

impl Echo {
    /// Attaches a client with one listener and `buffer_size` bytes of echo buffer, opens the
    /// listener, accepts one connection; the client then has its first receive pending.
    ///
    /// # Errors
    /// The configuration is refused or the client does not behave as a working echo server.
    pub fn start(buffer_size: u32) -> Result<Self, EchoError> {
        let mut builder = ConfigBuilder::new();
        builder
            .set_listen_addresses([LISTEN])
            .and_then(|()| builder.set_dword(ValueName::MaxConnections, 4))
            .and_then(|()| builder.set_dword(ValueName::BufferSize, buffer_size))
            .map_err(|error| EchoError(error.to_string()))?;
        let client = Box::new(Client::new(builder.build(), ECHO, TestPlatform::default()));
        let world = World::new(Mode::Pending);
        world.set_client_entry(core_setup);
        // SAFETY: the client is boxed and outlives its binding: `teardown` detaches and cleans
        // up, and `Drop` leaks the client of a run that did not.
        let status = unsafe { world.attach(&client, VERSIONS) };
        let mut echo = Self {
            client,
            world,
            connection: usize::MAX,
            received: 0,
            sent: 0,
            pattern: 0,
            torn_down: false,
        };
        if status != NtStatus::SUCCESS {
            return fail(format!("attach failed with {status}"));
        }
        echo.open_listener_and_accept()?;
        Ok(echo)
    }

    /// Takes the pending operation `filter` accepts, or fails naming `what`.
    fn expect(&self, what: &str, filter: impl Fn(&Op) -> bool) -> Result<Op, EchoError> {
        self.world
            .take(filter)
            .map_or_else(|| fail(format!("the client has no {what} pending")), Ok)
    }

    fn open_listener_and_accept(&mut self) -> Result<(), EchoError> {
        if !self.world.accept_events_enabled() {
            return fail("accept events were not enabled");
        }
        let open = self.expect("WskSocket", |op| matches!(op.call, Call::Open(_)))?;
        let listener = open.io;
        self.world.succeed(open);
        let bind = self.expect("WskBind", |op| matches!(op.call, Call::Bind(_)))?;
        self.world.succeed(bind);
        let remote = "127.0.0.1:50000".parse().ok();
        self.connection = match self.world.accept_on(listener, remote) {
            Some(Ok(io)) => io,
            Some(Err(status)) => return fail(format!("the connection was refused with {status}")),
            None => return fail("the listener closed"),
        };
        // `NoDelay` (on by default): `TCP_NODELAY` before the first receive.
        let connection = self.connection;
        let option = self.expect("TCP_NODELAY", |op| {
            op.io == connection && op.call == Call::SetNoDelay
        })?;
        self.world.succeed(option);
        self.check_clean()
    }

    /// One echo cycle: the pending receive completes with `min(requested, chunk)` bytes, the
    /// client sends them back; the send completes in full, the client has a receive pending
    /// again.
    ///
    /// # Errors
    /// The client did not issue the send or the next receive, or sent other bytes than it got.
    pub fn cycle(&mut self, chunk: usize) -> Result<(), EchoError> {
        let connection = self.connection;
        let receive = self.expect("Receive", |op| {
            op.io == connection && matches!(op.call, Call::Receive(_))
        })?;
        let Call::Receive(range) = receive.call.clone() else {
            return fail("not a receive");
        };
        let n = range.len().min(chunk);
        if n == 0 {
            return fail(format!("receive of {range:?}: empty"));
        }
        let data: Vec<u8> = (0..n)
            .map(|_| {
                let byte = self.pattern;
                self.pattern = self.pattern.wrapping_add(1);
                byte
            })
            .collect();
        let filled = range.start..range.start + n;
        self.world.set_client_entry(core_step_received);
        self.world.deliver(receive, &data);
        self.received += u64::try_from(n).unwrap_or(u64::MAX);
        let send = self.expect("Send", |op| {
            op.io == connection && matches!(op.call, Call::Send(_))
        })?;
        let Call::Send(echoed) = send.call.clone() else {
            return fail("not a send");
        };
        if echoed != filled {
            return fail(format!("sent {echoed:?} after receiving {filled:?}"));
        }
        if self.world.send_bytes(&send, echoed.len()) != data {
            return fail(format!("the send of {echoed:?} is not the bytes received"));
        }
        self.world.set_client_entry(core_step_sent);
        self.world.succeed(send);
        self.sent += u64::try_from(echoed.len()).unwrap_or(u64::MAX);
        let receiving = self
            .world
            .pending()
            .iter()
            .any(|op| op.io == connection && matches!(op.call, Call::Receive(_)));
        if !receiving {
            return fail("no receive pending after the send completed");
        }
        self.check_clean()
    }

    fn check_clean(&self) -> Result<(), EchoError> {
        let violations = self.world.violations();
        if !violations.is_empty() {
            return fail(format!("contract violated: {violations:?}"));
        }
        let problems: Vec<String> = self
            .client
            .platform()
            .logs()
            .into_iter()
            .filter(|(level, _)| *level <= Level::Warning)
            .map(|(level, line)| format!("{level:?}: {line}"))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            fail(format!("the client logged: {problems:?}"))
        }
    }

    /// Bytes received and bytes sent so far (by the completions this side gave).
    #[must_use]
    pub const fn totals(&self) -> (u64, u64) {
        (self.received, self.sent)
    }

    /// The client's `bytes_sent` counter.
    #[must_use]
    pub fn bytes_sent(&self) -> u64 {
        self.client.stats().snapshot().bytes_sent
    }

    /// Work items the double ran so far.
    #[must_use]
    pub fn work_items_run(&self) -> usize {
        self.world.work_items_run()
    }

    /// Detaches (closing the listener and the connection), lets WSK complete what is pending
    /// (cancelled or closed), and cleans the binding up.
    ///
    /// # Errors
    /// The detach did not complete, a block leaked, the contract was violated, or the client
    /// logged a problem.
    pub fn teardown(mut self) -> Result<(), EchoError> {
        self.torn_down = true;
        self.world.set_client_entry(core_teardown);
        let status = self.world.detach();
        if status == NtStatus::PENDING {
            self.world.drain();
        }
        let completions = self.world.detach_completions();
        match (status, completions) {
            (NtStatus::PENDING, 1) | (NtStatus::SUCCESS, 0) => {}
            _ => {
                return fail(format!(
                    "detach returned {status}, {completions} completion(s)"
                ));
            }
        }
        if !self.world.cleanup() || self.client.live_bindings() != 0 {
            return fail("a binding is still live after cleanup");
        }
        let live = self.client.platform().live_blocks();
        if live != 0 {
            return fail(format!("{live} block(s) leaked"));
        }
        if self.world.pending_count() != 0 || self.world.live_ios() != 0 {
            return fail("operations or socket I/Os left after cleanup");
        }
        self.check_clean()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        if !self.torn_down {
            // A failed run: the client cannot be dropped under a live binding, so leak it.
            let client = std::mem::replace(
                &mut self.client,
                Box::new(Client::new(
                    ConfigBuilder::new().build(),
                    ECHO,
                    TestPlatform::default(),
                )),
            );
            std::mem::forget(client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_buffer_cycles_echo_every_byte_and_tear_down_clean() {
        let mut echo = Echo::start(4096).unwrap();
        for _ in 0..10 {
            echo.cycle(usize::MAX).unwrap();
        }
        assert_eq!(echo.totals(), (40960, 40960));
        assert_eq!(echo.bytes_sent(), 40960);
        echo.teardown().unwrap();
    }

    #[test]
    fn each_completion_of_a_cycle_runs_one_work_item() {
        let mut echo = Echo::start(4096).unwrap();
        let before = echo.work_items_run();
        for _ in 0..10 {
            echo.cycle(usize::MAX).unwrap();
        }
        assert_eq!(echo.work_items_run() - before, 20);
        echo.teardown().unwrap();
    }

    #[test]
    fn partial_receives_wrap_around_the_ring() {
        let mut echo = Echo::start(4096).unwrap();
        for _ in 0..20 {
            echo.cycle(1000).unwrap();
        }
        // 4 receives of 1000, then the 96 bytes left before the end of the buffer, ...
        let (received, sent) = echo.totals();
        assert_eq!(received, sent);
        assert!(
            received < 20_000,
            "a receive at the end of the ring is shorter"
        );
        assert_eq!(echo.bytes_sent(), received);
        echo.teardown().unwrap();
    }

    #[test]
    fn a_missing_operation_is_an_error() {
        let mut echo = Echo::start(4096).unwrap();
        let receive = echo
            .world
            .take(|op| matches!(op.call, Call::Receive(_)))
            .unwrap();
        let error = echo.cycle(100).unwrap_err();
        assert!(error.0.contains("no Receive pending"), "{error}");
        // The peer closes: the receive completes with no data.
        echo.world.deliver(receive, &[]);
        echo.teardown().unwrap();
    }

    #[test]
    fn entries_run_the_call_they_are_given() {
        for entry in [
            core_setup,
            core_step_received,
            core_step_sent,
            core_teardown,
        ] {
            let mut runs = 0;
            entry(&mut || runs += 1);
            assert_eq!(runs, 1);
        }
    }

    #[test]
    fn double_functions_are_told_from_client_functions() {
        for double in [
            "<wsk_client::testing::provider::calls::TestProvider as wsk_client::provider::Provider>::send",
            "<wsk_client::testing::provider::calls::TestIo as core::ops::drop::Drop>::drop",
            "<wsk_primitives::testing::TestPlatform as wsk_primitives::platform::Platform>::allocate",
            "core::ptr::drop_in_place<wsk_client::testing::provider::calls::TestProvider>",
            "wsk_client::testing::provider::nmr::<impl wsk_client::testing::provider::World>::new_provider",
        ] {
            assert!(is_test_double(double), "{double}");
        }
        for client in [
            "wskecho_bench::echo_step::core_step_sent",
            "wsk_client::socket::Socket<P>::run",
            "core::ptr::drop_in_place<wsk_client::client::Client<wsk_client::testing::provider::calls::TestProvider>>",
            "<wsk_client::testing::provider::calls::TestProviderX as wsk_client::provider::Provider>::send",
            "wsk_client::testing::provider::nmr::<impl wsk_client::testing::provider::World>::enter_client::{{closure}}",
        ] {
            assert!(!is_test_double(client), "{client}");
        }
    }
}
