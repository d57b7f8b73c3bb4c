//! Many concurrent clients echo random payloads byte-exact, in random chunk sizes, with
//! half-close, over IPv4 and IPv6, with completions delivered on worker threads and inline.

mod common;

use std::time::Duration;

use common::{LOOPBACK, Rng, assert_clean, echo_in_chunks, options, start, wait_for};
use wsk_harness::wsk::{InlineMode, WskMode};

const CLIENTS: usize = 48;

fn run(inline: InlineMode, seed: u64) {
    let mut opts = options(&LOOPBACK);
    opts.wsk = WskMode {
        inline,
        ..WskMode::default()
    };
    let (harness, listening) = start(opts);
    let mut rng = Rng::new(seed);
    let mut expected_bytes = 0_u64;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            // Mostly small payloads, some larger than the echo buffer, some empty.
            let len = match rng.range(0, 9) {
                0 => 0,
                1 => rng.range(100_000, 400_000),
                _ => rng.range(1, 40_000),
            };
            expected_bytes += len as u64;
            let payload = rng.bytes(len);
            let addr = listening[n % listening.len()];
            let seed = rng.next();
            std::thread::spawn(move || {
                let back = echo_in_chunks(addr, payload.clone(), seed).expect("echo");
                assert!(
                    back == payload,
                    "client {n} ({addr}): {} bytes sent, {} back, differ",
                    payload.len(),
                    back.len()
                );
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }
    // Every connection ends with both sides' FIN: the driver closes them gracefully.
    wait_for("connections closed", Duration::from_secs(10), || {
        harness.wsk().open_sockets() == listening.len()
    });
    let counters = harness.wsk().counters();
    assert_eq!(counters.accepted, CLIENTS as u64);
    assert_eq!(counters.graceful, CLIENTS as u64, "{counters:?}");
    let report = harness.unload();
    assert_clean(&report);
    assert_eq!(report.accepted, CLIENTS as u64);
    assert_eq!(report.bytes_sent, expected_bytes);
}

#[test]
fn concurrent_clients_echo_exactly_with_completions_on_workers() {
    run(InlineMode::Never, 0x5eed_0001);
}

#[test]
fn concurrent_clients_echo_exactly_with_inline_completions() {
    run(InlineMode::Alternate, 0x5eed_0002);
}
