//! `NoDelay`: `TCP_NODELAY` on each accepted connection before its first receive.

extern crate std;

use super::{attached, cancel_receive_and_finish, lines};
use std::{boxed::Box, sync::Arc};

use crate::{
    client::Client,
    config::{ConfigBuilder, ValueName},
    provider::Completion,
    testing::provider::{Call, TestProvider, World},
};
use wsk_primitives::{platform::Level, status::NtStatus};

/// One listener on 127.0.0.1:7 with `NoDelay` = `no_delay`, attached.
fn served(no_delay: u32) -> (Arc<World>, Box<Client<TestProvider>>) {
    let mut b = ConfigBuilder::new();
    b.set_listen_addresses(["127.0.0.1:7"]).expect("endpoints");
    b.set_dword(ValueName::BufferSize, 512).expect("BufferSize");
    b.set_dword(ValueName::NoDelay, no_delay).expect("NoDelay");
    attached(b.build_in_place())
}

fn accept(world: &World) -> usize {
    let listener = world.listeners()[0];
    world
        .accept(listener, Some("192.0.2.9:4000".parse().unwrap()))
        .expect("accepted");
    *world.connection_ios().last().unwrap()
}

#[test]
fn tcp_nodelay_is_set_before_the_first_receive() {
    let (world, client) = served(1);
    let io = accept(&world);
    let option = world
        .take_on(io, |c| *c == Call::SetNoDelay)
        .expect("TCP_NODELAY set");
    assert!(
        world
            .take_on(io, |c| matches!(c, Call::Receive(_)))
            .is_none(),
        "a receive before the option completed"
    );
    world.succeed(option);
    let receive = world
        .take_on(io, |c| matches!(c, Call::Receive(_)))
        .expect("first receive after the option");
    cancel_receive_and_finish(&world, &client, receive);
}

#[test]
fn a_failed_tcp_nodelay_still_serves_the_connection() {
    let (world, client) = served(1);
    let io = accept(&world);
    let option = world
        .take_on(io, |c| *c == Call::SetNoDelay)
        .expect("TCP_NODELAY set");
    world.complete(
        option,
        Completion::OptionSet(Err(NtStatus::INVALID_DEVICE_STATE)),
    );
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("TCP_NODELAY") && l.contains("Nagle's algorithm on"))
    );
    let receive = world
        .take_on(io, |c| matches!(c, Call::Receive(_)))
        .expect("served anyway");
    assert_eq!(client.stats().snapshot().failures, 0);
    cancel_receive_and_finish(&world, &client, receive);
}

#[test]
fn no_delay_off_makes_no_option_call() {
    let (world, client) = served(0);
    let io = accept(&world);
    assert!(world.take_on(io, |c| *c == Call::SetNoDelay).is_none());
    let receive = world
        .take_on(io, |c| matches!(c, Call::Receive(_)))
        .expect("first receive");
    cancel_receive_and_finish(&world, &client, receive);
}

#[test]
fn a_detach_while_the_option_is_pending_closes_the_connection() {
    let (world, client) = served(1);
    let io = accept(&world);
    assert!(
        world
            .pending()
            .iter()
            .any(|op| op.io == io && op.call == Call::SetNoDelay)
    );
    assert_eq!(world.detach(), NtStatus::PENDING);
    world.drain();
    assert!(world.detached());
    assert!(world.cleanup());
    world.assert_finished();
    client.platform().assert_clean();
}
