//! loom model 6 (docs/testing.md): the binding's timer racing the detach, through the real
//! core.
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

/// Model 6: the timer expires (its tick sweeps the connections, then arms the timer again)
/// while NMR detaches the binding on another thread. Whichever order: the timer's reference is dropped exactly
/// once — by the detach cancelling an armed timer, or by a tick that finds the binding
/// detaching (also one that armed the timer just after the detach found it not armed) — the
/// detach completes once, never with the timer armed, and no tick runs after it.
#[test]
fn tick_races_detach() {
    tick_races_detach_with(1);
}

/// Model 6 with the listener only: the detach's last close can complete (and the binding be
/// freed) while a tick is still returning from its arm.
#[test]
fn tick_races_detach_without_connections() {
    tick_races_detach_with(0);
}

fn tick_races_detach_with(connections: usize) {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    check(move || {
        let scenario = Scenario::new(connections);
        // NMR detaches on its own thread while this thread plays the timer's work item.
        let nmr = {
            let world = Arc::clone(&scenario.world);
            thread::spawn(move || {
                world.detach();
            })
        };
        let wsk = spawn_wsk(&scenario.world);
        // Two expiries: the second runs the tick the first one armed, if still armed.
        scenario.world.fire_timer();
        scenario.world.fire_timer();
        nmr.join()
            .unwrap_or_else(|_| violated(format_args!("NMR thread panicked")));
        // A tick armed after the detach began may still hold the timer's reference: its
        // expiry drops it.
        scenario.world.fire_timer();
        wsk.join()
            .unwrap_or_else(|_| violated(format_args!("WSK thread panicked")));
        seen.record(scenario.finish());
    });
    outcomes.assert_seen(&[
        "a cancel found the timer armed",
        "a cancel found the timer not armed",
        "a tick ran after the detach began",
        "the timer was armed after the detach began",
    ]);
}
