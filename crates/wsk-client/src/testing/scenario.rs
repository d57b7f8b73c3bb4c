//! The steps most tests against the recording [`World`] share.
//!
//! A configuration, a client attached with its listeners open, an accepted connection, a
//! stream of bytes through it, and [`finish`], which detaches, drains and checks the whole
//! contract and the pool.

use std::{boxed::Box, string::String, sync::Arc, vec::Vec};

use crate::{
    client::Client,
    config::{Config, ConfigBuilder, ValueName},
    handler::Service,
    provider::Completion,
    testing::{
        TestPlatform,
        provider::{Call, Mode, Op, TestProvider, World},
    },
};
use wsk_primitives::{platform::Level, status::NtStatus};

/// A configuration with `endpoints`, `max_connections` and `buffer_size`, and `NoDelay` off
/// (so a connection's first call is its receive).
///
/// # Panics
/// A value out of the configuration's range.
#[must_use]
pub fn config(endpoints: &[&str], max_connections: u32, buffer_size: u32) -> Config {
    let mut b = ConfigBuilder::new();
    b.set_listen_addresses(endpoints.iter().copied())
        .expect("endpoints");
    b.set_dword(ValueName::MaxConnections, max_connections)
        .expect("MaxConnections");
    b.set_dword(ValueName::BufferSize, buffer_size)
        .expect("BufferSize");
    b.set_dword(ValueName::NoDelay, 0).expect("NoDelay");
    b.build()
}

/// A client serving `service` over a [`TestPlatform`] with `config`, boxed: bindings point to
/// their client, which must not move while one is live.
#[must_use]
pub fn client(config: &Config, service: Service) -> Box<Client<TestProvider>> {
    Box::new(Client::new(*config, service, TestPlatform::default()))
}

/// A world and a client serving `service` with `config`, attached, listeners open.
///
/// # Safety
/// The client is neither dropped nor moved out of its box while its binding is live: call
/// [`finish`] first.
///
/// # Panics
/// The attach failed.
#[must_use]
pub unsafe fn attached(
    config: &Config,
    service: Service,
) -> (Arc<World>, Box<Client<TestProvider>>) {
    let world = World::new(Mode::Pending);
    let served = client(config, service);
    // SAFETY: per the caller, the client outlives the binding.
    unsafe { attach_and_listen(&world, &served) };
    (world, served)
}

/// Attaches and completes every listener's open and bind.
///
/// # Safety
/// As [`World::attach_1_0`]: `client` stays in place until every binding is freed.
///
/// # Panics
/// The attach failed.
pub unsafe fn attach_and_listen(world: &Arc<World>, client: &Client<TestProvider>) {
    // SAFETY: per the caller.
    let status = unsafe { world.attach_1_0(client) };
    assert!(status.is_success(), "attach: {status}");
    complete_setup(world);
}

/// Completes pending listener setup steps (open, `IPV6_V6ONLY`, bind) until none is left.
pub fn complete_setup(world: &World) {
    while let Some(op) =
        world.take(|op| matches!(op.call, Call::Open(_) | Call::SetIpv6Only | Call::Bind(_)))
    {
        world.succeed(op);
    }
}

/// Accepts one connection from 192.0.2.1:4000 on the first listener; returns its I/O index.
///
/// # Panics
/// No listener, or the connection was refused.
#[must_use]
pub fn connect(world: &World) -> usize {
    let listener = world.listeners()[0];
    world
        .accept(listener, Some("192.0.2.1:4000".parse().expect("address")))
        .expect("accepted");
    *world.connection_ios().last().expect("a connection")
}

/// The connection's pending receive, if any.
#[must_use]
pub fn take_receive(world: &World, io: usize) -> Option<Op> {
    world.take_on(io, |c| matches!(c, Call::Receive(_)))
}

/// The connection's pending send, if any.
#[must_use]
pub fn take_send(world: &World, io: usize) -> Option<Op> {
    world.take_on(io, |c| matches!(c, Call::Send(_)))
}

/// Feeds `input` to connection `io` and returns the bytes it sent, in order.
///
/// Receives complete with chunks of varying sizes and sends complete partially (sizes varying
/// too), until everything was fed and as much came back.
///
/// Completes no receive once everything was fed: a handler that sends only after the peer
/// finished needs more than this.
///
/// # Panics
/// No progress for 1,000 steps in a row (the connection stopped receiving or sending).
#[must_use]
pub fn stream(world: &World, io: usize, input: &[u8]) -> Vec<u8> {
    let mut fed = 0;
    let mut sent = Vec::new();
    let mut step = 0_usize;
    let mut stalled = 0_usize;
    while fed < input.len() || sent.len() < input.len() {
        step += 1;
        let before = (fed, sent.len());
        assert!(
            stalled < 1_000,
            "no progress: fed {fed}, sent back {}",
            sent.len()
        );
        if fed < input.len()
            && let Some(receive) = take_receive(world, io)
        {
            let chunk = 1 + step * 37 % 300;
            let end = (fed + chunk).min(input.len());
            fed += world.deliver(receive, &input[fed..end]);
        }
        if let Some(send) = take_send(world, io) {
            let Call::Send(range) = send.call.clone() else {
                unreachable!("take_send takes sends")
            };
            let n = 1 + step * 53 % range.len();
            sent.extend(world.send_bytes(&send, n));
            world.complete(send, Completion::Sent(Ok(n)));
        }
        stalled = if (fed, sent.len()) == before {
            stalled + 1
        } else {
            0
        };
    }
    sent
}

/// Checks that a connection served by `service` (with a 512-byte buffer) sends back 5,000
/// bytes in order, as [`stream`] feeds them, and that the counters and the pool agree.
///
/// # Panics
/// The bytes differ, the counters disagree, or [`finish`] fails.
pub fn assert_sends_back_what_it_receives(service: Service) {
    // SAFETY: `finish` runs before the client is dropped.
    let (world, client) = unsafe { attached(&config(&["127.0.0.1:7"], 4, 512), service) };
    let io = connect(&world);
    let input: Vec<u8> = (0..5000_u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(stream(&world, io, &input), input);
    assert_eq!(client.stats().snapshot().bytes_sent, 5000);
    finish(&world, &client);
}

/// The client's log lines at `level`.
#[must_use]
pub fn lines(client: &Client<TestProvider>, level: Level) -> Vec<String> {
    client
        .platform()
        .logs()
        .into_iter()
        .filter(|(l, _)| *l == level)
        .map(|(_, s)| s)
        .collect()
}

/// Detaches, drains every pending operation, cleans up; checks the whole contract and that
/// the pool is clean.
///
/// # Panics
/// The detach never completed, a binding is left, a contract violation, or a leak.
pub fn finish(world: &World, client: &Client<TestProvider>) {
    let status = world.detach();
    if status == NtStatus::PENDING {
        world.drain();
    }
    assert!(world.detached(), "detach never completed");
    assert!(world.cleanup(), "cleanup must report no live binding");
    assert_eq!(client.live_bindings(), 0);
    world.assert_unloaded();
    client.platform().assert_clean();
}
