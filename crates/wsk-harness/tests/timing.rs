//! The same echo-then-unload run under every timing the documents allow: attach inside or
//! after `NmrRegisterClient`, detach inside the deregistration call or on another thread,
//! and completions on worker threads, inline, or mixed.

mod common;

use std::time::Duration;

use common::{LOOPBACK, Rng, assert_clean, echo_in_chunks, options, start, wait_for};
use wsk_harness::{
    nmr::NmrMode,
    wsk::{InlineMode, WskMode},
};

#[test]
fn echo_and_unload_are_clean_under_every_nmr_and_completion_timing() {
    let mut rng = Rng::new(0x7111);
    for attach_inline in [true, false] {
        for detach_inline in [true, false] {
            for inline in [InlineMode::Never, InlineMode::Always, InlineMode::Alternate] {
                let mut opts = options(&LOOPBACK);
                opts.nmr = NmrMode {
                    attach_inline,
                    detach_inline,
                    detach_during_attach: !attach_inline,
                    ..NmrMode::default()
                };
                opts.wsk = WskMode {
                    inline,
                    workers: 2,
                    ..WskMode::default()
                };
                let what = format!(
                    "attach inline {attach_inline}, detach inline {detach_inline}, {inline:?}"
                );
                let (harness, listening) = start(opts);
                let clients: Vec<_> = (0..8)
                    .map(|n| {
                        let len = rng.range(0, 60_000);
                        let payload = rng.bytes(len);
                        let addr = listening[n % 2];
                        let seed = rng.next();
                        std::thread::spawn(move || {
                            echo_in_chunks(addr, payload.clone(), seed).map(|back| back == payload)
                        })
                    })
                    .collect();
                for client in clients {
                    assert!(
                        matches!(client.join(), Ok(Ok(true))),
                        "{what}: echo differs or failed"
                    );
                }
                wait_for(&what, Duration::from_secs(10), || {
                    harness.wsk().open_sockets() == 2
                });
                let report = harness.unload();
                assert!(report.clean(), "{what}: {report:#?}");
                assert_eq!(report.accepted, 8, "{what}");
            }
        }
    }
    let _ = assert_clean;
}
