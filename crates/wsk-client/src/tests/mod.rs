//! Unit tests of the binding lifecycle, the socket state machines and the echo path, against
//! the test doubles of `testing/`.
#![allow(clippy::similar_names, clippy::cast_possible_truncation)] // test code

mod attach;
mod detach;
mod echo;
mod handler;
mod no_delay;
mod pool_sites;
mod timer;

extern crate std;

use std::{string::String, sync::Arc, vec::Vec};

use crate::{
    client::Client,
    config::{Config, ConfigBuilder, ValueName},
    provider::Completion,
    testing::provider::{Call, Mode, Op, TestProvider, World, client},
};
use wsk_primitives::{platform::Level, status::NtStatus};

/// A configuration with `endpoints`, `max_connections` and `buffer_size`, and `NoDelay` off
/// (so a connection's first call is its receive; `no_delay.rs` covers the option).
fn config(endpoints: &[&str], max_connections: u32, buffer_size: u32) -> Config {
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

/// A world and a client with one listener on 127.0.0.1:7, attached, listener open.
fn one_listener(
    max_connections: u32,
    buffer_size: u32,
) -> (Arc<World>, std::boxed::Box<Client<TestProvider>>) {
    attached(&config(&["127.0.0.1:7"], max_connections, buffer_size))
}

/// A world and a client with `config`, attached, listeners open.
fn attached(config: &Config) -> (Arc<World>, std::boxed::Box<Client<TestProvider>>) {
    let world = World::new(Mode::Pending);
    let client = client(*config);
    attach_and_listen(&world, &client);
    (world, client)
}

/// Completes a connection's pending `receive` as cancelled, then [`finish`]es.
fn cancel_receive_and_finish(world: &World, client: &Client<TestProvider>, receive: Op) {
    world.complete(receive, Completion::Received(Err(NtStatus::CANCELLED)));
    world.drain();
    finish(world, client);
}

/// Attaches and completes every listener's open and bind.
fn attach_and_listen(world: &Arc<World>, client: &Client<TestProvider>) {
    // SAFETY: the client outlives every binding in these tests.
    let status = unsafe { world.attach_1_0(client) };
    assert!(status.is_success(), "attach: {status}");
    complete_setup(world);
}

/// Completes pending listener setup steps (open, `IPV6_V6ONLY`, bind) until none is left.
fn complete_setup(world: &World) {
    while let Some(op) =
        world.take(|op| matches!(op.call, Call::Open(_) | Call::SetIpv6Only | Call::Bind(_)))
    {
        world.succeed(op);
    }
}

/// Log lines at `level`.
fn lines(client: &Client<TestProvider>, level: Level) -> Vec<String> {
    client
        .platform()
        .logs()
        .into_iter()
        .filter(|(l, _)| *l == level)
        .map(|(_, s)| s)
        .collect()
}

/// Detaches, drains every pending operation, cleans up; checks the whole contract.
fn finish(world: &World, client: &Client<TestProvider>) {
    let status = world.detach();
    if status == wsk_primitives::status::NtStatus::PENDING {
        world.drain();
    }
    assert!(world.detached(), "detach never completed");
    assert!(world.cleanup(), "cleanup must report no live binding");
    assert_eq!(client.live_bindings(), 0);
    world.assert_finished();
    client.platform().assert_clean();
}
