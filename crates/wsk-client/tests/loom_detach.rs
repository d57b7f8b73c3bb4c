//! loom models 1 and 2 (docs/testing.md): the detach of a binding racing the calls into WSK
//! made by the real core, with the model WSK winding sockets down on its own thread.
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
use wsk_client::testing::provider::Call;

/// Model 1: `calls` connections each get data (their pending receive completes), so the
/// core's runner makes the handler's `send` call on that thread while NMR calls
/// `ClientDetachProvider` on the main thread and WSK completes closes on another. The detach
/// completes exactly once, strictly after the last call returned; never before, never twice.
fn detach_with_calls_in_flight(calls: usize, expected: &[&str]) {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    check(move || {
        let scenario = Scenario::new(calls);
        let callers: Vec<_> = scenario
            .connections
            .iter()
            .map(|&io| {
                let world = Arc::clone(&scenario.world);
                thread::spawn(move || {
                    // Unless the close already cancelled it, the receive completes with data.
                    if let Some(op) =
                        world.take(|p| p.io == io && matches!(p.call, Call::Receive(_)))
                    {
                        world.deliver(op, b"data");
                    }
                })
            })
            .collect();
        let wsk = spawn_wsk(&scenario.world);
        scenario.world.detach();
        for caller in callers {
            caller
                .join()
                .unwrap_or_else(|_| violated(format_args!("caller panicked")));
        }
        wsk.join()
            .unwrap_or_else(|_| violated(format_args!("WSK thread panicked")));
        seen.record(scenario.finish());
    });
    outcomes.assert_seen(expected);
}

/// The races each form of model 1 must reach (docs/testing.md). The detach never drains
/// inside its callback here (`STATUS_SUCCESS`): the listener's close is made by its work item,
/// after the callback returned; but the work item may run on the detaching thread
/// (`NmrClientDetachProviderComplete` there) or the last completion's (another thread).
const DETACH_RACES: [&str; 2] = [
    "detach returned STATUS_PENDING",
    "detach completed on another thread than ClientDetachProvider's",
];

#[test]
fn detach_with_no_call_in_flight() {
    detach_with_calls_in_flight(0, &DETACH_RACES);
}

#[test]
fn detach_with_one_call_in_flight() {
    detach_with_calls_in_flight(
        1,
        &[
            &DETACH_RACES[..],
            &["detach began while a call into WSK was executing"],
        ]
        .concat(),
    );
}

#[test]
fn detach_with_two_calls_in_flight() {
    detach_with_calls_in_flight(
        2,
        &[
            &DETACH_RACES[..],
            &["detach began while a call into WSK was executing"],
        ]
        .concat(),
    );
}

/// Model 2: a new connection arrives (accept event on the listener: the core admits it and
/// calls `receive` on it, or refuses it) while the detach starts. Either it is admitted and
/// the detach waits for it (its socket is closed and freed before the detach completes), or it
/// is refused; a call is never admitted after the detach completed.
#[test]
fn call_racing_detach_start() {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    check(move || {
        let scenario = Scenario::new(0);
        let acceptor = {
            let world = Arc::clone(&scenario.world);
            let listener = scenario.listener;
            thread::spawn(move || world.accept_on(listener, Some(remote())))
        };
        let wsk = spawn_wsk(&scenario.world);
        scenario.world.detach();
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
    ]);
}

/// Beyond models 1 to 5 (docs/testing.md): NMR calls `ClientDetachProvider` as soon as
/// `NmrClientAttachProvider` succeeded, while `ClientAttachProvider` is still enabling accept
/// events and opening the listener (which WSK creates and binds on its own thread). The attach
/// reference keeps the binding alive; the listener is closed whether the detach's scan finds it
/// or it finds the binding closing after publishing itself; everything else as in model 1.
#[test]
fn detach_racing_attach() {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    check(move || {
        let scenario = Scenario::unattached();
        scenario.world.complete_setup();
        let nmr = {
            let world = Arc::clone(&scenario.world);
            thread::spawn(move || {
                world.wait_attached();
                world.detach();
            })
        };
        let wsk = spawn_wsk(&scenario.world);
        scenario.attach();
        nmr.join()
            .unwrap_or_else(|_| violated(format_args!("NMR thread panicked")));
        wsk.join()
            .unwrap_or_else(|_| violated(format_args!("WSK thread panicked")));
        seen.record(scenario.finish());
    });
    outcomes.assert_seen(&[
        "detach began before ClientAttachProvider returned",
        "detach completed before ClientAttachProvider returned",
        "detach returned STATUS_PENDING",
        "detach returned STATUS_SUCCESS",
    ]);
}
