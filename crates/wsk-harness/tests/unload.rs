//! Unload (`sc stop`) while 200 clients are mid-transfer: the detach goes through
//! `STATUS_PENDING` and completes, Unload is bounded (it does not wait for the peers), and
//! nothing leaks or breaks the contract.

mod common;

use std::{
    io::{Read, Write},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{LOOPBACK, Rng, assert_clean, connect, options, start, wait_for};
use wsk_harness::wsk::{InlineMode, WskMode};

const CLIENTS: usize = 200;

#[test]
fn unload_mid_transfer_is_bounded_pending_and_clean() {
    // Completions on worker threads, and closes that take a moment: the closes the detach
    // requests are then still in flight when the callback returns, so it must pend. (When
    // every close finishes before the callback's last check, SUCCESS is right instead.)
    // All 200 clients come from the one loopback address of each family: no per-address limit.
    let mut opts = options(&LOOPBACK)
        .with_max_connections_per_address(0)
        .expect("valid");
    opts.wsk = WskMode {
        inline: InlineMode::Never,
        close_delay: Duration::from_millis(20),
        ..WskMode::default()
    };
    let (harness, listening) = start(opts);
    let exchanges = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let addr = listening[n % listening.len()];
            let exchanges = Arc::clone(&exchanges);
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                let mut rng = Rng::new(n as u64 + 7);
                let mut back = vec![0_u8; 4096];
                // Lockstep exchanges until the driver goes away: every byte must come back
                // exactly, and the end must be an error or EOF, not a hang.
                loop {
                    let len = rng.range(1, 4096);
                    let chunk = rng.bytes(len);
                    if stream.write_all(&chunk).is_err() {
                        return;
                    }
                    let got = &mut back[..chunk.len()];
                    match stream.read_exact(got) {
                        Ok(()) => assert!(*got == chunk[..], "client {n}: echo differs"),
                        Err(_) => return,
                    }
                    exchanges.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    wait_for("all clients accepted", Duration::from_secs(30), || {
        harness.wsk().counters().accepted == CLIENTS as u64
    });
    let before = exchanges.load(Ordering::Relaxed);
    wait_for("traffic", Duration::from_secs(30), || {
        exchanges.load(Ordering::Relaxed) > before + 2 * CLIENTS
    });

    let start = Instant::now();
    let report = harness.unload();
    let unload = start.elapsed();
    eprintln!(
        "unload with {CLIENTS} clients mid-transfer: {unload:?}, {}",
        report.to_json()
    );
    assert_clean(&report);
    assert_eq!(report.detach, "pending", "{report:?}");
    assert!(unload < Duration::from_secs(5), "unload took {unload:?}");
    // The peers were not waited for: they all see the connection end (RST), promptly.
    let deadline = Instant::now() + Duration::from_secs(20);
    for client in clients {
        assert!(
            Instant::now() < deadline,
            "clients did not see the connections end"
        );
        client.join().expect("client thread");
    }
}
