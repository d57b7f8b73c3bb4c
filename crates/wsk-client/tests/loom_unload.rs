//! loom models 3 and 5 (docs/testing.md): who starts the detach, and Unload waiting for the
//! deregistration while the last completion runs elsewhere, through the real core with a
//! minimal NMR model (`wsk_client::testing::provider`).
#![cfg(loom)]

#[allow(dead_code)] // Each model file uses part of the shared support.
mod loom_common;

use std::sync::Arc;

use loom::thread;
use loom_common::{
    Outcomes, check,
    scenario::{Scenario, spawn_wsk},
    violated,
};
use wsk_client::testing::provider::{Call, Cleanup};

/// Model 3: the WSK subsystem deregisters (NMR calls `ClientDetachProvider` on its thread)
/// while the driver's Unload deregisters the client, and a connection's receive completes with
/// data. NMR's "detach started" flag lets exactly one of them call the core's detach; the
/// detach completes once and cleanup runs exactly once, after it; Unload returns only when no
/// binding is live, and nothing touches the client after that.
#[test]
fn provider_detach_races_client_deregistration() {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    check(move || {
        let mut scenario = Scenario::new(1);
        let connection = scenario.connections[0];
        let provider_side = {
            let world = Arc::clone(&scenario.world);
            thread::spawn(move || {
                if world.deregister().is_some() {
                    world.fact("the WSK subsystem's deregistration started the detach");
                }
            })
        };
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
        let wsk = spawn_wsk(&scenario.world);
        // Unload: NmrDeregisterClient, NmrWaitForClientDeregisterComplete, no binding live.
        if scenario.world.deregister().is_some() {
            scenario
                .world
                .fact("the client's deregistration started the detach");
        }
        scenario.world.wait_detached();
        scenario.unload();
        provider_side
            .join()
            .unwrap_or_else(|_| violated(format_args!("provider side panicked")));
        completion
            .join()
            .unwrap_or_else(|_| violated(format_args!("completion panicked")));
        wsk.join()
            .unwrap_or_else(|_| violated(format_args!("WSK thread panicked")));
        seen.record(scenario.finish());
    });
    outcomes.assert_seen(&[
        "the WSK subsystem's deregistration started the detach",
        "the client's deregistration started the detach",
        "detach began while a call into WSK was executing",
        "detach completed on another thread than ClientDetachProvider's",
    ]);
}

/// Model 5: Unload deregisters (the detach returns `STATUS_PENDING`: the sockets are still
/// closing) and waits, while WSK completes the cancelled receive and the closes on another
/// thread; the last of them completes the detach there. Unload returns only after everything
/// is freed, and nothing touches the client after it returned. `deferred_cleanup`: NMR runs
/// cleanup on the waiting thread instead of inside `NmrClientDetachProviderComplete`.
fn unload_waits_for_last_completion(deferred_cleanup: bool) {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    check(move || {
        let mut scenario = Scenario::new(1);
        if deferred_cleanup {
            scenario.world.set_cleanup(Cleanup::AfterDeregisterWait);
        }
        let wsk = spawn_wsk(&scenario.world);
        scenario.world.deregister();
        scenario.world.wait_detached();
        scenario.unload();
        scenario.platform.assert_clean();
        wsk.join()
            .unwrap_or_else(|_| violated(format_args!("WSK thread panicked")));
        seen.record(scenario.finish());
    });
    outcomes.assert_seen(&[
        "detach returned STATUS_PENDING",
        "detach completed on another thread than ClientDetachProvider's",
    ]);
}

#[test]
fn unload_waits_for_last_completion_cleanup_inline() {
    unload_waits_for_last_completion(false);
}

#[test]
fn unload_waits_for_last_completion_cleanup_on_waiter() {
    unload_waits_for_last_completion(true);
}
