//! Allocation-failure sweep: for every pool allocation the driver makes during start-up and
//! during one connection's life, failing it gives a clean error path: no crash, no leak, no
//! contract violation, and a later unload that completes.

mod common;

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpStream},
    time::{Duration, Instant},
};

use common::{assert_clean, options, start};
use wsk_harness::harness::Harness;

/// Waits until the driver is quiet: listeners open, or allocation attempts stopped changing.
fn settle(harness: &Harness, expected_listeners: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = harness.pool().attempts();
    let mut stable_since = Instant::now();
    while Instant::now() < deadline {
        if harness.wsk().listening().len() == expected_listeners
            && harness.pool().injected_failures() == 0
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
        let now = harness.pool().attempts();
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() > Duration::from_millis(150) {
            return;
        }
    }
}

#[test]
fn every_start_up_allocation_can_fail_cleanly() {
    let mut swept = 0;
    for n in 1.. {
        let harness = Harness::start_with(options(&common::LOOPBACK), |h| {
            h.pool().fail_nth_from_now(n);
        })
        .expect("harness starts");
        settle(&harness, 2);
        let injected = harness.pool().injected_failures();
        let report = harness.unload();
        assert!(
            report.clean(),
            "failing start-up allocation {n}: {report:#?}"
        );
        if injected == 0 {
            break;
        }
        swept += 1;
        assert!(n < 200, "start-up makes suspiciously many allocations");
    }
    eprintln!("start-up sweep: {swept} allocation failures injected, each cleanly handled");
    assert!(
        swept >= 2,
        "start-up made only {swept} allocations: is the sweep reaching the driver?"
    );
}

#[test]
fn every_connection_allocation_can_fail_cleanly() {
    let mut swept = 0;
    for n in 1.. {
        let (harness, listening) = start(options(&["127.0.0.1:0"]));
        harness.pool().fail_nth_from_now(n);
        // One connection's life: connect, echo, half-close, read to the end. With an
        // allocation failing, the driver may refuse or reset it; it must not hang it.
        let mut stream = TcpStream::connect(listening[0]).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(b"hello, allocation sweep");
        let _ = stream.shutdown(Shutdown::Write);
        let mut back = Vec::new();
        let read = stream.read_to_end(&mut back);
        if harness.pool().injected_failures() == 0 {
            assert!(
                read.is_ok() && back == b"hello, allocation sweep",
                "{read:?} {back:?}"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while harness.wsk().open_sockets() > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let injected = harness.pool().injected_failures();
        let report = harness.unload();
        assert!(
            report.clean(),
            "failing connection allocation {n}: {report:#?}"
        );
        if injected == 0 {
            break;
        }
        swept += 1;
        assert!(n < 100, "a connection makes suspiciously many allocations");
    }
    eprintln!("connection sweep: {swept} allocation failures injected, each cleanly handled");
    assert!(
        swept >= 1,
        "a connection made no allocation: is the sweep reaching the driver?"
    );
    let _ = assert_clean;
}
