//! Randomized stress: clients keep connecting and echoing while the WSK subsystem leaves and
//! comes back again and again, operations fail at random, and completion timing varies; then
//! Unload. Whatever the interleaving, no contract violation and no leak.

mod common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Rng, assert_clean, start_on_fixed_port};
use wsk_harness::{
    nmr::NmrMode,
    wsk::{FaultOp, InlineMode, WskMode},
};
use wsk_primitives::status::NtStatus;

/// One client: connect, echo a few random chunks in lockstep, sometimes half-close and drain,
/// sometimes just drop; tolerate the driver going away; count exact echoes.
fn client(addrs: [SocketAddr; 2], seed: u64, stop: &AtomicBool, exact: &AtomicUsize) {
    let mut rng = Rng::new(seed);
    let mut back = vec![0_u8; 8192];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(addrs[rng.range(0, 1)]) else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        for _ in 0..rng.range(1, 20) {
            let len = rng.range(1, 8192);
            let chunk = rng.bytes(len);
            if stream.write_all(&chunk).is_err() || stream.read_exact(&mut back[..len]).is_err() {
                break;
            }
            assert!(back[..len] == chunk[..], "echo differs");
            exact.fetch_add(1, Ordering::Relaxed);
        }
        if rng.range(0, 1) == 0 {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

#[test]
fn clients_provider_churn_and_faults_then_a_clean_unload() {
    for seed in [11_u64, 22] {
        let mut rng = Rng::new(seed);
        let detach_inline = rng.range(0, 1) == 0;
        let inline =
            [InlineMode::Never, InlineMode::Always, InlineMode::Alternate][rng.range(0, 2)];
        let (harness, listening) = start_on_fixed_port(|opts| {
            opts.nmr = NmrMode {
                detach_inline,
                detach_during_attach: true,
                ..NmrMode::default()
            };
            opts.wsk = WskMode {
                inline,
                ..WskMode::default()
            };
        });
        let addrs = [listening[0], listening[1]];
        let stop = Arc::new(AtomicBool::new(false));
        let exact = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..16)
            .map(|n| {
                let stop = Arc::clone(&stop);
                let exact = Arc::clone(&exact);
                std::thread::spawn(move || client(addrs, seed * 100 + n, &stop, &exact))
            })
            .collect();
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(rng.range(20, 80) as u64));
            let status = [
                NtStatus::CONNECTION_RESET,
                NtStatus::CONNECTION_ABORTED,
                NtStatus::INSUFFICIENT_RESOURCES,
            ][rng.range(0, 2)];
            let op = [FaultOp::Receive, FaultOp::Send, FaultOp::Disconnect][rng.range(0, 2)];
            harness.wsk().inject(op, rng.range(1, 50), status);
            if rng.range(0, 4) == 0 {
                harness.pool().fail_nth_from_now(rng.range(1, 10));
            }
            std::thread::sleep(Duration::from_millis(rng.range(20, 80) as u64));
            assert!(
                harness.deregister_provider(),
                "seed {seed}: provider deregistration did not complete"
            );
            assert_eq!(harness.wsk().open_sockets(), 0, "seed {seed}");
            // No allocation failure pending when it comes back: the listeners must reopen.
            harness.pool().fail_nth_from_now(0);
            harness.register_provider();
            let again = harness
                .wait_listening(Duration::from_secs(10))
                .expect("listeners reopen");
            assert_eq!(again, listening, "seed {seed}");
        }
        let before = exact.load(Ordering::Relaxed);
        common::wait_for("echo after the churn", Duration::from_secs(10), || {
            exact.load(Ordering::Relaxed) > before
        });
        let report = harness.unload();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().expect("client thread");
        }
        assert_clean(&report);
        assert!(report.accepted > 0);
    }
}
