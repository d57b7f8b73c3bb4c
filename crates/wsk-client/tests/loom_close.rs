//! loom model 4 (docs/testing.md): closing sockets racing an I/O completion on the connection
//! and an accept event on the listener, through the real core.
#![cfg(loom)]

#[allow(dead_code)] // Each model file uses part of the shared support.
mod loom_common;

use std::sync::Arc;

use loom::thread;
use loom_common::{
    Outcomes, check,
    scenario::{Scenario, remote, spawn_wsk},
    violated,
};
use wsk_client::{provider::Completion, testing::provider::Call};

/// Model 4: the detach closes the listener and a connection while the connection's receive
/// completes with data (the core's runner then makes the handler's `send` call) and an accept
/// event runs on the listener. Close is issued only when no call on that socket is executing;
/// each socket's context is freed exactly once, after its close completed; the listener's
/// close does not complete while the accept event runs (as WSK guarantees), and a connection
/// the event admitted is closed too.
#[test]
fn close_races_io_completion_and_accept_event() {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    check(move || {
        let scenario = Scenario::new(1);
        let connection = scenario.connections[0];
        let completion = {
            let world = Arc::clone(&scenario.world);
            thread::spawn(move || {
                if let Some(op) =
                    world.take(|p| p.io == connection && matches!(p.call, Call::Receive(_)))
                {
                    world.deliver(op, b"data");
                }
            })
        };
        let acceptor = {
            let world = Arc::clone(&scenario.world);
            let listener = scenario.listener;
            thread::spawn(move || world.accept_on(listener, Some(remote())))
        };
        let wsk = spawn_wsk(&scenario.world);
        scenario.world.detach();
        completion
            .join()
            .unwrap_or_else(|_| violated(format_args!("completion panicked")));
        let accepted = acceptor
            .join()
            .unwrap_or_else(|_| violated(format_args!("accept panicked")));
        wsk.join()
            .unwrap_or_else(|_| violated(format_args!("WSK thread panicked")));
        if let Some(Ok(io)) = accepted
            && !scenario.world.close_issued(io)
        {
            violated(format_args!(
                "a connection admitted during the detach was not closed by it"
            ));
        }
        seen.record(scenario.finish());
    });
    outcomes.assert_seen(&[
        "accept event: connection admitted",
        "accept event: connection refused",
        "a close waited for an accept event on its socket",
        "detach began while a call into WSK was executing",
    ]);
}

/// Model 4, second form: the peer closes (the receive completes with 0 bytes, and the core
/// winds the connection down on its own) while the detach requests the same socket's close.
/// Both paths lead to one close: never two, never a call after it.
#[test]
fn peer_close_races_detach_close() {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    check(move || {
        let scenario = Scenario::new(1);
        let connection = scenario.connections[0];
        let peer = {
            let world = Arc::clone(&scenario.world);
            thread::spawn(move || {
                if let Some(op) =
                    world.take(|p| p.io == connection && matches!(p.call, Call::Receive(_)))
                {
                    world.complete(op, Completion::Received(Ok(0)));
                }
            })
        };
        let wsk = spawn_wsk(&scenario.world);
        scenario.world.detach();
        peer.join()
            .unwrap_or_else(|_| violated(format_args!("peer panicked")));
        wsk.join()
            .unwrap_or_else(|_| violated(format_args!("WSK thread panicked")));
        seen.record(scenario.finish());
    });
    outcomes.assert_seen(&[
        "graceful disconnect issued",
        "detach returned STATUS_PENDING",
    ]);
}
