//! The WSK subsystem deregisters mid-traffic (provider-initiated detach), then registers
//! again: the driver re-attaches, its listeners reopen on the same ports and serve again;
//! then Unload is clean.

mod common;

use std::{
    io::{Read, Write},
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::{Rng, assert_clean, connect, echo_in_chunks, options, start_on_fixed_port, wait_for};
use wsk_harness::{harness::Harness, nmr::DetachCause};

#[test]
fn provider_detach_mid_traffic_then_reregistration_serves_again() {
    let (harness, listening) = start_on_fixed_port(|_| {});
    assert_eq!(listening[0].port(), listening[1].port(), "{listening:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..40)
        .map(|n| {
            let addr = listening[n % 2];
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                let mut rng = Rng::new(n as u64 + 99);
                let mut back = vec![0_u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let len = rng.range(1, 2048);
                    let chunk = rng.bytes(len);
                    if stream.write_all(&chunk).is_err()
                        || stream.read_exact(&mut back[..chunk.len()]).is_err()
                    {
                        return;
                    }
                    assert!(back[..chunk.len()] == chunk[..]);
                }
            })
        })
        .collect();
    wait_for("clients accepted", Duration::from_secs(20), || {
        harness.wsk().counters().accepted == 40
    });

    assert!(
        harness.deregister_provider(),
        "provider deregistration did not complete"
    );
    let records = harness.nmr().detach_records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].cause, DetachCause::ProviderDeregistered);
    assert!(harness.wsk().listening().is_empty());
    assert_eq!(harness.wsk().open_sockets(), 0);
    assert_eq!(
        harness.driver().map(|d| d.client().live_bindings()),
        Some(0)
    );
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }

    harness.register_provider();
    let relistening = harness
        .wait_listening(Duration::from_secs(10))
        .expect("listeners reopen");
    assert_eq!(relistening, listening);
    for (n, addr) in relistening.iter().enumerate() {
        let payload = Rng::new(n as u64).bytes(50_000);
        assert_eq!(
            echo_in_chunks(*addr, payload.clone(), 3).expect("echo after re-registration"),
            payload
        );
    }
    let report = harness.unload();
    assert_clean(&report);
    assert_eq!(report.accepted, 42);
}

/// Echoes once, tolerating a connection the driver drops (the provider may be leaving).
fn try_echo(addr: SocketAddr, payload: &[u8]) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if stream.write_all(payload).is_err() || stream.shutdown(std::net::Shutdown::Write).is_err() {
        return false;
    }
    let mut back = Vec::new();
    stream.read_to_end(&mut back).is_ok() && back == payload
}

#[test]
fn provider_detach_at_every_wsk_call_of_start_up_and_of_a_connection() {
    let payload = Rng::new(5).bytes(30_000);
    let mut swept = 0;
    for n in 1.. {
        let mut opts = options(&common::LOOPBACK);
        // The harshest NMR timing: the detach may start while the attach callback still runs.
        opts.nmr.detach_during_attach = true;
        let done = Arc::new(AtomicBool::new(false));
        let harness = Harness::start_with(opts, |h| {
            let nmr = h.nmr().clone();
            let done = Arc::clone(&done);
            h.wsk().at_call(n, move || {
                nmr.deregister_provider();
                done.store(true, Ordering::SeqCst);
            });
        })
        .expect("harness starts");
        // Start-up, then one connection's life, unless the provider left before.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while harness.wsk().listening().len() < 2
            && harness.wsk().calls() < n
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(addr) = harness.wsk().listening().first() {
            let echoed = try_echo(*addr, &payload);
            assert!(
                echoed || harness.wsk().calls() >= n,
                "echo failed without a provider detach (n = {n})"
            );
        }
        if harness.wsk().calls() < n {
            // The connection's life made fewer than n calls: the sweep is complete.
            let report = harness.unload();
            assert_clean(&report);
            break;
        }
        wait_for(
            "provider deregistration started",
            Duration::from_secs(10),
            || done.load(Ordering::SeqCst),
        );
        assert!(
            harness.nmr().wait_provider_deregistered(),
            "provider deregistration at call {n} did not complete"
        );
        assert!(harness.wsk().listening().is_empty(), "n = {n}");
        assert_eq!(harness.wsk().open_sockets(), 0, "n = {n}");
        assert_eq!(
            harness.driver().map(|d| d.client().live_bindings()),
            Some(0),
            "n = {n}"
        );
        // The subsystem comes back: the driver attaches again and serves.
        harness.register_provider();
        let listening = harness
            .wait_listening(Duration::from_secs(10))
            .expect("listeners reopen");
        assert!(
            try_echo(listening[0], &payload),
            "no echo after re-registration (n = {n})"
        );
        let report = harness.unload();
        assert!(
            report.clean(),
            "provider detach at WSK call {n}: {report:#?}"
        );
        swept += 1;
        assert!(n < 200, "suspiciously many WSK calls");
    }
    eprintln!("provider detach swept over {swept} WSK calls");
    assert!(
        swept >= 8,
        "only {swept} WSK calls: is the sweep reaching start-up and the connection?"
    );
}
