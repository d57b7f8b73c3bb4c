//! Detach, cleanup and re-attach, with calls in flight in many orders.

extern crate std;

use std::vec::Vec;

use super::{attach_and_listen, client, config, finish, lines, one_listener};
use crate::{
    config::{ConfigBuilder, ValueName},
    provider::Completion,
    testing::provider::{Call, Cleanup, Mode, Op, World},
};
use wsk_primitives::{platform::Level, status::NtStatus};

#[test]
fn detach_closes_listeners_from_work_items_then_completes() {
    // Inline mode: opens, binds and closes complete before the calls return. Still the detach
    // cannot drain inside its callback: the listeners' closes are made by their work items,
    // which run after the callback returned.
    let world = World::new(Mode::Inline);
    let client = client(&config(&["127.0.0.1:7", "[::1]:7"], 8, 512));
    attach_and_listen(&world, &client);
    assert_eq!(client.stats().snapshot().listeners_open, 2);
    assert_eq!(world.pending_count(), 0);
    let before = world.work_items_run();
    assert_eq!(world.detach(), NtStatus::PENDING);
    assert_eq!(world.work_items_run() - before, 2, "one run per listener");
    assert_eq!(
        world.detach_completions(),
        1,
        "the last close (in a work item) completes the detach"
    );
    assert!(world.cleanup());
    world.assert_finished();
    client.platform().assert_clean();
    let trace = lines(&client, Level::Trace);
    assert!(
        trace.iter().any(|l| l.contains("detach complete")),
        "{trace:?}"
    );
    assert!(trace.iter().any(|l| l.contains("cleanup")), "{trace:?}");
}

#[test]
fn detach_with_an_empty_binding_succeeds() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7"], 8, 512));
    world.fail_enable_accept_events(NtStatus::UNSUCCESSFUL);
    // SAFETY: the client outlives the binding.
    assert!(unsafe { world.attach_1_0(&client) }.is_success());
    assert_eq!(world.detach(), NtStatus::SUCCESS);
    assert!(world.cleanup());
    client.platform().assert_clean();
}

#[test]
fn detach_while_wsk_socket_pending_waits_then_closes_the_new_socket() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7"], 8, 512));
    // SAFETY: the client outlives the binding.
    assert!(unsafe { world.attach_1_0(&client) }.is_success());
    let open = world.take(|op| matches!(op.call, Call::Open(_))).unwrap();
    assert_eq!(world.detach(), NtStatus::PENDING, "one call in flight");
    assert_eq!(world.pending_count(), 0, "no close without a socket");
    world.succeed(open);
    let calls = world.calls();
    assert_eq!(
        calls.last().map(std::string::String::as_str),
        Some("Close"),
        "closed, not bound: {calls:?}"
    );
    assert_eq!(world.detach_completions(), 0);
    let close = world.take(|op| op.call == Call::Close).unwrap();
    world.succeed(close);
    assert_eq!(world.detach_completions(), 1);
    assert!(world.cleanup());
    world.assert_finished();
    client.platform().assert_clean();
}

#[test]
fn detach_while_bind_pending_closes_at_once() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7"], 8, 512));
    // SAFETY: the client outlives the binding.
    assert!(unsafe { world.attach_1_0(&client) }.is_success());
    let open = world.take(|op| matches!(op.call, Call::Open(_))).unwrap();
    world.succeed(open);
    assert_eq!(world.detach(), NtStatus::PENDING);
    assert!(
        world.pending().iter().any(|op| op.call == Call::Close),
        "close issued with bind pending"
    );
    world.drain();
    assert_eq!(world.detach_completions(), 1);
    assert_eq!(client.stats().snapshot().listeners_open, 0);
    assert!(world.cleanup());
    world.assert_finished();
    client.platform().assert_clean();
}

/// Builds a binding with two listeners and `connections` connections, each with a receive
/// pending, and (for the first) a send pending too.
fn busy(
    connections: usize,
) -> (
    std::sync::Arc<World>,
    std::boxed::Box<crate::client::Client<crate::testing::provider::TestProvider>>,
) {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7", "[::1]:7"], 16, 512));
    attach_and_listen(&world, &client);
    let listeners = world.listeners();
    for i in 0..connections {
        world
            .accept(listeners[i % 2], Some("10.0.0.1:5000".parse().unwrap()))
            .expect("accepted");
    }
    if connections > 0 {
        let io = world.connection_ios()[0];
        let receive = world
            .take_on(io, |c| matches!(c, Call::Receive(_)))
            .unwrap();
        world.deliver(receive, b"hello");
    }
    (world, client)
}

/// Completes the pending operations in the order given by `pick` (an index into the pending
/// list), checking after each that the detach completes exactly when nothing is left.
fn complete_in_order(world: &World, mut pick: impl FnMut(usize) -> usize) {
    loop {
        let pending: Vec<Op> = world.pending();
        if pending.is_empty() {
            break;
        }
        assert_eq!(
            world.detach_completions(),
            0,
            "detach completed with {} operation(s) pending",
            pending.len()
        );
        let op = pending[pick(pending.len()) % pending.len()].clone();
        let op = world.take(|p| p.io == op.io && p.call == op.call).unwrap();
        let completion = op.call.cancelled();
        world.complete(op, completion);
    }
    assert_eq!(world.detach_completions(), 1);
}

#[test]
fn detach_with_one_call_in_flight() {
    let (world, client) = busy(0);
    assert_eq!(world.detach(), NtStatus::PENDING);
    assert_eq!(
        world
            .pending()
            .iter()
            .filter(|op| op.call == Call::Close)
            .count(),
        2
    );
    complete_in_order(&world, |_| 0);
    assert!(world.cleanup());
    world.assert_finished();
    client.platform().assert_clean();
}

#[test]
fn detach_with_many_calls_in_flight_in_many_orders() {
    for seed in 0..40_u32 {
        let (world, client) = busy(5);
        assert_eq!(
            world
                .pending()
                .iter()
                .filter(|op| matches!(op.call, Call::Send(_)))
                .count(),
            1
        );
        let calls_before = world.calls().len();
        assert_eq!(world.detach(), NtStatus::PENDING);
        let new_calls: Vec<_> = world.calls().into_iter().skip(calls_before).collect();
        assert_eq!(
            new_calls.len(),
            7,
            "exactly one close per socket: {new_calls:?}"
        );
        assert!(new_calls.iter().all(|c| c == "Close"), "{new_calls:?}");
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        complete_in_order(&world, |_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize
        });
        let tail = world.calls();
        assert_eq!(
            tail.last().map(std::string::String::as_str),
            Some("detach_complete")
        );
        assert!(world.cleanup());
        world.assert_finished();
        client.platform().assert_clean();
        let stats = client.stats().snapshot();
        assert_eq!(
            (stats.active, stats.listeners_open, stats.accepted),
            (0, 0, 5)
        );
    }
}

#[test]
fn closes_completing_first_then_cancellations_also_complete_the_detach_once() {
    let (world, client) = busy(3);
    assert_eq!(world.detach(), NtStatus::PENDING);
    // WSK may complete a close before the operations it cancelled (the core must wait).
    while let Some(close) = world.take(|op| op.call == Call::Close) {
        world.succeed(close);
        assert_eq!(world.detach_completions(), 0);
    }
    complete_in_order(&world, |n| n - 1);
    assert!(world.cleanup());
    world.assert_finished();
    client.platform().assert_clean();
}

#[test]
fn new_calls_during_detach_are_refused() {
    let (world, client) = busy(1);
    let listener = world.listeners()[0];
    assert_eq!(world.detach(), NtStatus::PENDING);
    // An accept event racing the detach: refused, no call made.
    let calls = world.calls().len();
    assert_eq!(
        world.accept(listener, None),
        Err(NtStatus::REQUEST_NOT_ACCEPTED)
    );
    assert_eq!(client.stats().snapshot().refused, 1);
    assert_eq!(
        world.calls().len(),
        calls + 1,
        "only the accept event itself"
    );
    // A receive completing with data during the detach: no new receive or send.
    let io = world.connection_ios()[0];
    let receive = world.take_on(io, |c| matches!(c, Call::Receive(_)));
    if let Some(receive) = receive {
        world.deliver(receive, b"late");
    }
    assert!(
        world
            .calls()
            .iter()
            .skip(calls + 1)
            .all(|c| !c.starts_with("Receive") && !c.starts_with("Send")),
        "{:?}",
        world.calls()
    );
    world.drain();
    assert_eq!(world.detach_completions(), 1);
    let calls_at_completion = world.calls().len();
    assert!(world.cleanup());
    assert_eq!(
        world.calls().len(),
        calls_at_completion,
        "no call after the detach completed"
    );
    world.assert_finished();
    client.platform().assert_clean();
}

#[test]
fn cleanup_inside_detach_complete_is_safe() {
    let (world, client) = busy(2);
    world.set_cleanup(Cleanup::WhenDetached);
    assert_eq!(world.detach(), NtStatus::PENDING);
    world.drain();
    assert_eq!(world.detach_completions(), 1);
    assert_eq!(client.live_bindings(), 0);
    world.assert_finished();
    client.platform().assert_clean();
}

#[test]
fn provider_detach_then_cleanup_then_reattach_reopens_the_listeners() {
    // The WSK subsystem leaves (provider-initiated): detach, cleanup; then it comes back.
    let (world, client) = one_listener(4, 512);
    assert_eq!(world.detach(), NtStatus::PENDING);
    world.drain();
    assert!(world.cleanup());
    assert_eq!(client.live_bindings(), 0);
    client.platform().assert_clean();
    attach_and_listen(&world, &client);
    assert_eq!(client.stats().snapshot().listeners_open, 1);
    let listener = world.listeners()[0];
    assert!(world.accept(listener, None).is_ok(), "serving again");
    // Unload this time: the same calls in the same order (the core cannot tell them apart).
    finish(&world, &client);
}

#[test]
fn unload_order_detach_complete_before_cleanup_and_live_count() {
    let (world, client) = busy(2);
    assert_eq!(client.live_bindings(), 1);
    assert_eq!(world.detach(), NtStatus::PENDING);
    assert_eq!(client.live_bindings(), 1, "still live until cleanup");
    world.drain();
    assert_eq!(client.live_bindings(), 1);
    assert!(world.cleanup());
    assert_eq!(client.live_bindings(), 0);
    world.assert_finished();
    client.platform().assert_clean();
}

/// The first accepted connection's peer resets it: its receive fails, the core closes it, and
/// the close completes.
fn reset_first_connection(world: &World) {
    let io = world.connection_ios()[0];
    let receive = world
        .take_on(io, |c| matches!(c, Call::Receive(_)))
        .unwrap();
    world.complete(
        receive,
        Completion::Received(Err(NtStatus::CONNECTION_RESET)),
    );
    let close = world
        .take_on(io, |c| *c == Call::Close)
        .expect("reset closes");
    world.succeed(close);
}

#[test]
fn accept_refused_beyond_max_connections_and_admitted_again_after_a_close() {
    let (world, client) = one_listener(2, 512);
    let listener = world.listeners()[0];
    assert!(world.accept(listener, None).is_ok());
    assert!(world.accept(listener, None).is_ok());
    assert_eq!(
        world.accept(listener, None),
        Err(NtStatus::REQUEST_NOT_ACCEPTED)
    );
    let stats = client.stats().snapshot();
    assert_eq!((stats.accepted, stats.refused, stats.active), (2, 1, 2));
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("MaxConnections (2)"))
    );
    // One connection ends (reset): its slot is free again.
    reset_first_connection(&world);
    assert_eq!(client.stats().snapshot().active, 1);
    assert!(world.accept(listener, None).is_ok());
    finish(&world, &client);
}

#[test]
fn one_address_holds_at_most_its_quota_while_others_are_served() {
    let world = World::new(Mode::Pending);
    let mut b = ConfigBuilder::new();
    b.set_listen_addresses(["127.0.0.1:7"]).expect("endpoints");
    b.set_dword(ValueName::MaxConnections, 8)
        .expect("MaxConnections");
    b.set_dword(ValueName::MaxConnectionsPerAddress, 2)
        .expect("MaxConnectionsPerAddress");
    b.set_dword(ValueName::NoDelay, 0).expect("NoDelay");
    let client = client(&b.build());
    attach_and_listen(&world, &client);
    let listener = world.listeners()[0];
    let peer = |text: &str| Some(text.parse::<std::net::SocketAddr>().expect("address"));
    let (a1, a2, mapped) = (
        peer("10.0.0.1:5001"),
        peer("10.0.0.1:5002"),
        peer("[::ffff:10.0.0.1]:5003"),
    );
    assert!(world.accept(listener, a1).is_ok());
    assert!(world.accept(listener, a2).is_ok());
    assert_eq!(
        world.accept(listener, mapped),
        Err(NtStatus::REQUEST_NOT_ACCEPTED),
        "its IPv4-mapped form is the same address"
    );
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("10.0.0.1 holds MaxConnectionsPerAddress (2)")),
        "{:?}",
        lines(&client, Level::Warning)
    );
    // Other addresses, and peers whose address WSK did not give, are still served.
    assert!(world.accept(listener, peer("10.0.0.2:6000")).is_ok());
    assert!(world.accept(listener, peer("[2001:db8::1]:6000")).is_ok());
    assert!(world.accept(listener, peer("[2001:db8::1]:6001")).is_ok());
    assert!(world.accept(listener, peer("[2001:db8::1]:6002")).is_err());
    assert!(world.accept(listener, None).is_ok());
    let stats = client.stats().snapshot();
    assert_eq!(
        (
            stats.accepted,
            stats.refused,
            stats.refused_per_address,
            stats.active
        ),
        (6, 2, 2, 6)
    );
    // One of 10.0.0.1's connections ends (reset): its quota has room again.
    reset_first_connection(&world);
    assert!(world.accept(listener, mapped).is_ok());
    assert_eq!(
        world.accept(listener, a1),
        Err(NtStatus::REQUEST_NOT_ACCEPTED)
    );
    assert_eq!(client.stats().snapshot().refused_per_address, 3);
    finish(&world, &client);
}

#[test]
fn accept_allocation_failures_are_refused_and_leave_nothing() {
    let (world, client) = one_listener(4, 512);
    let listener = world.listeners()[0];
    client.platform().fail_allocation_after(0);
    assert_eq!(
        world.accept(listener, None),
        Err(NtStatus::REQUEST_NOT_ACCEPTED)
    );
    world.fail_socket_io(Some(NtStatus::INSUFFICIENT_RESOURCES));
    assert_eq!(
        world.accept(listener, None),
        Err(NtStatus::REQUEST_NOT_ACCEPTED)
    );
    world.fail_socket_io(None);
    let stats = client.stats().snapshot();
    assert_eq!((stats.refused, stats.failures, stats.active), (2, 2, 0));
    assert!(world.accept(listener, None).is_ok());
    finish(&world, &client);
}

#[test]
fn threads_accepting_and_completing_while_detach_runs() {
    use std::{sync::Arc, thread};
    for _ in 0..30 {
        let world = World::new(Mode::Pending);
        let client = Arc::new(client(&config(&["127.0.0.1:7"], 64, 512)));
        attach_and_listen(&world, &client);
        let listener = world.listeners()[0];
        let acceptors: Vec<_> = (0..2)
            .map(|_| {
                let world = Arc::clone(&world);
                thread::spawn(move || {
                    for _ in 0..10 {
                        let _ = world.accept(listener, None);
                    }
                })
            })
            .collect();
        let completer = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                for _ in 0..50 {
                    if let Some(op) = world.take(|op| matches!(op.call, Call::Receive(_))) {
                        world.deliver(op, b"x");
                    }
                    if let Some(op) = world.take(|op| matches!(op.call, Call::Send(_))) {
                        world.succeed(op);
                    }
                }
            })
        };
        let status = world.detach();
        for h in acceptors {
            h.join().expect("acceptor");
        }
        completer.join().expect("completer");
        if status == NtStatus::PENDING {
            world.drain();
        }
        assert_eq!(
            world.detach_completions() + usize::from(status == NtStatus::SUCCESS),
            1
        );
        assert!(world.cleanup());
        world.assert_finished();
        client.platform().assert_clean();
    }
}

#[test]
fn one_trace_line_per_lifecycle_step_in_order() {
    let (world, client) = one_listener(4, 512);
    assert_eq!(world.detach(), NtStatus::PENDING);
    world.drain();
    assert!(world.cleanup());
    let trace = lines(&client, Level::Trace);
    let steps = [
        "attached to the WSK subsystem",
        "listener 127.0.0.1:7: opening",
        "listener 127.0.0.1:7: listening",
        "detach: closing every socket",
        "listener 127.0.0.1:7: closed",
        "detach complete: NmrClientDetachProviderComplete",
        "cleanup: binding freed",
    ];
    let mut position = 0;
    for step in steps {
        let found = trace.iter().skip(position).position(|l| l.contains(step));
        let Some(offset) = found else {
            panic!("missing or out of order: {step:?} in {trace:#?}");
        };
        position += offset + 1;
    }
    world.assert_finished();
    client.platform().assert_clean();
}
