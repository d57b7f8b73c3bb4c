//! The WSK subsystem deregisters mid-traffic (provider-initiated detach), then registers
//! again: the driver re-attaches, its listeners reopen on the same ports and serve again;
//! then Unload is clean.

mod common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::{Rng, assert_clean, connect, echo_in_chunks, options, start, wait_for};
use wskecho_harness::nmr::DetachCause;

/// A port free on both `127.0.0.1` and `::1` right now.
fn free_port() -> u16 {
    loop {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        if TcpListener::bind(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port))).is_ok() {
            return port;
        }
    }
}

#[test]
fn provider_detach_mid_traffic_then_reregistration_serves_again() {
    let port = free_port();
    let listen = [format!("127.0.0.1:{port}"), format!("[::1]:{port}")];
    let (harness, listening) = start(options(&[&listen[0], &listen[1]]));
    assert!(listening.iter().all(|a| a.port() == port), "{listening:?}");

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
