//! Unit tests of the binding lifecycle, the socket state machines and the data path, against
//! the test doubles of `testing/` (connections served by its `Mirror` handler).
#![allow(clippy::similar_names, clippy::cast_possible_truncation)] // test code

mod attach;
mod data_path;
mod detach;
mod handler;
mod no_delay;
mod pool_sites;
mod timer;

extern crate std;

use std::sync::Arc;

use crate::{
    client::Client,
    config::Config,
    provider::Completion,
    testing::{
        mirror::MIRROR,
        provider::{Op, TestProvider, World},
        scenario::{self, finish},
    },
};
use wsk_primitives::status::NtStatus;

use scenario::{complete_setup, config, connect, lines, take_receive, take_send};

/// A client over the test platform serving [`MIRROR`] with `config`.
fn client(config: &Config) -> std::boxed::Box<Client<TestProvider>> {
    scenario::client(config, MIRROR)
}

/// A world and a client with one listener on 127.0.0.1:7, attached, listener open.
fn one_listener(
    max_connections: u32,
    buffer_size: u32,
) -> (Arc<World>, std::boxed::Box<Client<TestProvider>>) {
    attached(&config(&["127.0.0.1:7"], max_connections, buffer_size))
}

/// A world and a client serving [`MIRROR`] with `config`, attached, listeners open.
fn attached(config: &Config) -> (Arc<World>, std::boxed::Box<Client<TestProvider>>) {
    // SAFETY: every test finishes (detach, cleanup) before it drops its client.
    unsafe { scenario::attached(config, MIRROR) }
}

/// Attaches `client` and completes its listeners' setup.
fn attach_and_listen(world: &Arc<World>, client: &Client<TestProvider>) {
    // SAFETY: every test finishes (detach, cleanup) before it drops its client.
    unsafe { scenario::attach_and_listen(world, client) };
}

/// Completes a connection's pending `receive` as cancelled, then [`finish`]es.
fn cancel_receive_and_finish(world: &World, client: &Client<TestProvider>, receive: Op) {
    world.complete(receive, Completion::Received(Err(NtStatus::CANCELLED)));
    world.drain();
    finish(world, client);
}
