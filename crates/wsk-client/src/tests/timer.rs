//! The binding's timer: idle connections closed after `IdleTimeout`, failed listeners reopened
//! with a bounded backoff, and the timer's reference through the detach.

extern crate std;

use std::boxed::Box;

use super::{attached, cancel_receive_and_finish, client, complete_setup, finish, lines};
use crate::{
    binding::TICK_MS,
    client::Client,
    config::{ConfigBuilder, ValueName},
    provider::Completion,
    startup::Startup,
    testing::provider::{Call, Mode, Op, TestProvider, World},
};
use wsk_primitives::{platform::Level, status::NtStatus};

/// One listener on 127.0.0.1:7, `IdleTimeout` = `idle` seconds, `NoDelay` off; attached.
fn served(idle: u32) -> (std::sync::Arc<World>, Box<Client<TestProvider>>) {
    let mut b = ConfigBuilder::new();
    b.set_listen_addresses(["127.0.0.1:7"]).expect("endpoints");
    b.set_dword(ValueName::BufferSize, 512).expect("BufferSize");
    b.set_dword(ValueName::IdleTimeout, idle)
        .expect("IdleTimeout");
    b.set_dword(ValueName::NoDelay, 0).expect("NoDelay");
    attached(b.build_in_place())
}

/// Accepts a connection; returns its I/O index and its first receive.
fn connect(world: &World) -> (usize, Op) {
    let listener = world.listeners()[0];
    world
        .accept(listener, Some("192.0.2.7:4000".parse().unwrap()))
        .expect("accepted");
    let io = *world.connection_ios().last().unwrap();
    let receive = world
        .take_on(io, |c| matches!(c, Call::Receive(_)))
        .expect("first receive");
    (io, receive)
}

fn close_issued(world: &World, io: usize) -> bool {
    world
        .pending()
        .iter()
        .any(|op| op.io == io && op.call == Call::Close)
}

#[test]
fn the_timer_ticks_from_the_attach_to_the_detach() {
    let (world, client) = served(0);
    assert_eq!(
        world.timer(),
        Some(TICK_MS),
        "armed at the end of the attach"
    );
    assert!(world.fire_timer_times(3), "each tick arms the next");
    assert_eq!(world.timer_arms(), 4);
    // The detach cancels the armed timer and drops its reference itself.
    finish(&world, &client);
}

#[test]
fn a_silent_connection_is_closed_abortively_after_the_idle_timeout() {
    let (world, client) = served(2);
    let (io, receive) = connect(&world);
    // Two ticks may pass within the timeout (the first may come right after the accept).
    assert!(world.fire_timer_times(2));
    assert!(!close_issued(&world, io), "closed too early");
    assert!(world.fire_timer());
    assert!(close_issued(&world, io), "not closed after IdleTimeout");
    assert_eq!(client.stats().snapshot().idle_closed, 1);
    assert!(
        lines(&client, Level::Info)
            .iter()
            .any(|l| l.contains("192.0.2.7:4000") && l.contains("no progress for 2 s"))
    );
    // Later ticks post again; the runner acts once.
    assert!(world.fire_timer_times(2));
    assert_eq!(client.stats().snapshot().idle_closed, 1);
    world.complete(receive, Completion::Received(Err(NtStatus::CANCELLED)));
    world.drain();
    assert!(
        lines(&client, Level::Info)
            .iter()
            .any(|l| l.contains("closed abortively"))
    );
    assert_eq!(client.stats().snapshot().active, 0);
    finish(&world, &client);
}

#[test]
fn progress_in_either_direction_restarts_the_idle_count() {
    let (world, client) = served(2);
    let (io, receive) = connect(&world);
    assert_eq!(world.deliver(receive, b"ping"), 4);
    let mut send = world
        .take_on(io, |c| matches!(c, Call::Send(_)))
        .expect("echo");
    for _ in 0..5 {
        // A send completes between each pair of ticks: the peer is slow, not stalled.
        assert!(world.fire_timer_times(2));
        world.complete(send, Completion::Sent(Ok(1)));
        assert!(
            !close_issued(&world, io),
            "a connection making progress was closed"
        );
        send = world
            .take_on(io, |c| matches!(c, Call::Send(_)))
            .unwrap_or_else(|| panic!("next send"));
        if matches!(&send.call, Call::Send(r) if r.len() == 1) {
            break;
        }
    }
    world.complete(send, Completion::Sent(Ok(1)));
    assert_eq!(client.stats().snapshot().idle_closed, 0);
    let receive = world
        .take_on(io, |c| matches!(c, Call::Receive(_)))
        .expect("receive");
    world.complete(receive, Completion::Received(Ok(0)));
    world.drain();
    finish(&world, &client);
}

#[test]
fn a_peer_that_stops_reading_is_cut_off_with_the_send_pending() {
    let (world, client) = served(1);
    let (io, receive) = connect(&world);
    assert_eq!(world.deliver(receive, &[7; 100]), 100);
    let send = world
        .take_on(io, |c| matches!(c, Call::Send(_)))
        .expect("echo");
    // The send never completes: the peer does not read.
    assert!(world.fire_timer_times(2));
    assert!(
        close_issued(&world, io),
        "a stalled send kept its connection"
    );
    assert_eq!(client.stats().snapshot().idle_closed, 1);
    world.complete(send, Completion::Sent(Err(NtStatus::CANCELLED)));
    world.drain();
    finish(&world, &client);
}

#[test]
fn a_graceful_disconnect_that_never_completes_becomes_an_abortive_close() {
    let (world, client) = served(1);
    let (io, receive) = connect(&world);
    world.complete(receive, Completion::Received(Ok(0)));
    let disconnect = world
        .take_on(io, |c| *c == Call::Disconnect)
        .expect("graceful disconnect after FIN");
    assert!(world.fire_timer_times(2));
    assert!(
        close_issued(&world, io),
        "the disconnect was waited for forever"
    );
    world.complete(
        disconnect,
        Completion::Disconnected(Err(NtStatus::CANCELLED)),
    );
    world.drain();
    assert!(
        lines(&client, Level::Info)
            .iter()
            .any(|l| l.contains("closed abortively"))
    );
    finish(&world, &client);
}

#[test]
fn idle_timeout_zero_keeps_silent_connections() {
    let (world, client) = served(0);
    let (io, receive) = connect(&world);
    assert!(world.fire_timer_times(50));
    assert!(!close_issued(&world, io));
    assert_eq!(client.stats().snapshot().idle_closed, 0);
    cancel_receive_and_finish(&world, &client, receive);
}

/// Kills the only listener (accept event without a socket) and completes its close.
fn kill_listener(world: &World) {
    let listener = world.listeners()[0];
    assert!(world.accept_with(listener, None, None).is_err());
    let close = world.take(|op| op.call == Call::Close).expect("closed");
    world.succeed(close);
}

#[test]
fn a_failed_listener_is_reopened_with_a_doubling_backoff() {
    let (world, client) = served(0);
    let startup = client.startup().snapshot();
    kill_listener(&world);
    let stats = || client.stats().snapshot();
    assert_eq!(stats().listeners_open, 0);
    // Tick 1 finds it down and plans the attempt one tick later.
    assert!(world.fire_timer());
    assert_eq!(stats().listeners_down, 1);
    assert!(world.take(|op| matches!(op.call, Call::Open(_))).is_none());
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("127.0.0.1:7") && l.contains("reopening in 1000 ms"))
    );
    // Tick 2 reopens it; WskSocket fails: the next wait is doubled.
    assert!(world.fire_timer());
    let open = world
        .take(|op| matches!(op.call, Call::Open(_)))
        .expect("reopen attempt");
    assert_eq!(stats().listener_reopens, 1);
    world.complete(
        open,
        Completion::Created(Err(NtStatus::INSUFFICIENT_RESOURCES)),
    );
    assert!(world.fire_timer());
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("reopening in 2000 ms"))
    );
    assert!(world.fire_timer());
    assert!(world.take(|op| matches!(op.call, Call::Open(_))).is_none());
    assert!(world.fire_timer());
    let open = world
        .take(|op| matches!(op.call, Call::Open(_)))
        .expect("second attempt");
    world.succeed(open);
    complete_setup(&world);
    assert_eq!(stats().listeners_open, 1);
    assert_eq!(stats().listener_reopens, 2);
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("listening again"))
    );
    // A reopen is no start-up event, and its failure no error.
    assert_eq!(client.startup().snapshot(), startup);
    assert_eq!(stats().failures, 0);
    assert!(world.fire_timer());
    assert_eq!(stats().listeners_down, 0);
    // The backoff starts afresh after it listened: the next failure waits one tick.
    kill_listener(&world);
    assert!(world.fire_timer());
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .filter(|l| l.contains("reopening in 1000 ms"))
            .count()
            == 2
    );
    finish(&world, &client);
}

#[test]
fn the_backoff_is_bounded() {
    let (world, client) = served(0);
    kill_listener(&world);
    let mut attempts = 0;
    for _ in 0..400 {
        assert!(world.fire_timer());
        if let Some(open) = world.take(|op| matches!(op.call, Call::Open(_))) {
            attempts += 1;
            world.complete(open, Completion::Created(Err(NtStatus::UNSUCCESSFUL)));
        }
    }
    // Waits 1, 2, 4, ..., 64, 64, ... ticks (+ the tick that finds it down): 7 attempts in
    // the first 134 ticks, then one every 65.
    assert_eq!(attempts, 7 + (400 - 134) / 65);
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("reopening in 64000 ms"))
    );
    assert!(
        !lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("reopening in 128000 ms"))
    );
    finish(&world, &client);
}

#[test]
fn a_listener_that_failed_at_start_up_is_retried() {
    let world = World::new(Mode::Pending);
    let mut b = ConfigBuilder::new();
    b.set_listen_addresses(["127.0.0.1:7", "127.0.0.1:8"])
        .expect("endpoints");
    let client = client(&b.build());
    // SAFETY: the client outlives the binding.
    assert!(unsafe { world.attach_1_0(&client) }.is_success());
    let open = world
        .take(|op| op.call == Call::Open("127.0.0.1:8".parse().unwrap()))
        .expect("open");
    world.succeed(open);
    let bind = world
        .take(|op| op.call == Call::Bind("127.0.0.1:8".parse().unwrap()))
        .expect("bind");
    world.complete(
        bind,
        Completion::Bound(Err(NtStatus::ADDRESS_ALREADY_EXISTS)),
    );
    complete_setup(&world);
    world.drain();
    assert!(matches!(
        client.startup().snapshot(),
        Startup::Settled {
            open: 1,
            failed: 1,
            ..
        }
    ));
    assert!(world.fire_timer_times(2));
    assert!(
        world
            .take(|op| op.call == Call::Open("127.0.0.1:8".parse().unwrap()))
            .is_some_and(|op| {
                world.succeed(op);
                true
            }),
        "the port may be free now"
    );
    complete_setup(&world);
    assert_eq!(client.stats().snapshot().listeners_open, 2);
    finish(&world, &client);
}

#[test]
fn no_listener_is_reopened_during_the_detach() {
    let (world, client) = served(0);
    kill_listener(&world);
    assert!(world.fire_timer());
    // The tick is due (cannot be cancelled) when the detach begins: the detach waits for it.
    assert!(world.expire_timer());
    assert_eq!(world.detach(), NtStatus::PENDING);
    assert!(!world.detached(), "completed with the timer's tick due");
    assert!(world.fire_timer());
    assert!(world.detached(), "the tick dropped the timer's reference");
    assert_eq!(world.timer(), None, "armed again while detaching");
    assert!(world.take(|op| matches!(op.call, Call::Open(_))).is_none());
    assert!(world.cleanup());
    world.assert_finished();
    client.platform().assert_clean();
}
