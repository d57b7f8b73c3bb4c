//! loom model 6 (docs/testing.md): the binding's timer racing the detach, through the real
//! core.
#![cfg(loom)]

#[allow(dead_code)] // Each model file uses part of the shared support.
mod loom_common;

use std::sync::Arc;

use loom::thread;
use loom_common::{Outcomes, check, scenario::Scenario, violated, wsk::spawn_wsk};

/// Model 6: the timer expires (its tick sweeps the connections, then arms the timer again)
/// while NMR detaches the binding. Whichever order: the timer's reference is dropped exactly
/// once — by the detach cancelling an armed timer, or by a tick that finds the binding
/// detaching (also one that armed the timer just after the detach found it not armed) — the
/// detach completes once, never with the timer armed, and no tick runs after it.
#[test]
fn tick_races_detach() {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    check(move || {
        let scenario = Scenario::new(1);
        let timer = {
            let world = Arc::clone(&scenario.world);
            // Two expiries: the second runs the tick the first one armed, if still armed.
            thread::spawn(move || {
                world.fire_timer();
                world.fire_timer();
            })
        };
        let wsk = spawn_wsk(&scenario.world);
        scenario.world.detach();
        timer
            .join()
            .unwrap_or_else(|_| violated(format_args!("timer panicked")));
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
