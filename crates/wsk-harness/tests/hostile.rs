//! Hostile and idle peers, end to end: `IdleTimeout` cuts off silent and stalled peers,
//! failed listeners are reopened, `NoDelay` sets `TCP_NODELAY`, and the timer never outlives
//! the driver.

mod common;

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use common::{assert_clean, connect, options, start, start_on_fixed_port, wait_for};
use wsk_client::stats::StatsSnapshot;
use wsk_harness::{harness::Harness, wsk::FaultOp};
use wsk_primitives::status::NtStatus;

fn stats(harness: &Harness) -> StatsSnapshot {
    harness
        .driver()
        .expect("driver loaded")
        .client()
        .stats()
        .snapshot()
}

/// Echoes `n` bytes once over `stream`; `false` if the driver did not echo them.
fn served(stream: &mut TcpStream, n: usize) -> bool {
    let data = vec![0x42_u8; n];
    if stream.write_all(&data).is_err() {
        return false;
    }
    let mut back = vec![0_u8; n];
    stream.read_exact(&mut back).is_ok() && back == data
}

/// Whether the driver closed `stream` (end of stream or reset) within `timeout`.
fn closed_by_driver(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut byte = [0_u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// A new peer that is served at once, or not.
fn new_peer_served(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).is_ok_and(|mut s| {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        served(&mut s, 100)
    })
}

#[test]
fn silent_peers_holding_every_slot_are_cut_off_and_a_new_peer_is_served() {
    const IDLE: u64 = 2;
    let opts = options(&["127.0.0.1:0"])
        .with_max_connections(4)
        .and_then(|o| o.with_idle_timeout(u32::try_from(IDLE).unwrap()))
        .expect("valid options");
    let (harness, listening) = start(opts);
    let addr = listening[0];
    // A slowloris: MaxConnections peers, each served once, then silent.
    let mut silent: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    for peer in &mut silent {
        assert!(served(peer, 10), "a peer was not served");
    }
    let last_progress = Instant::now();
    assert!(
        !new_peer_served(addr),
        "a fifth peer was served beyond MaxConnections"
    );
    // Not before IdleTimeout (less a little for the clocks): still held at 80 % of it.
    std::thread::sleep(Duration::from_millis(IDLE * 800).saturating_sub(last_progress.elapsed()));
    assert_eq!(stats(&harness).idle_closed, 0, "closed before IdleTimeout");
    // Within IdleTimeout + one tick + a margin, the slots are free and a new peer is served.
    let deadline = last_progress + Duration::from_secs(IDLE + 2);
    let mut served_after = None;
    while Instant::now() < deadline {
        if new_peer_served(addr) {
            served_after = Some(last_progress.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let served_after = served_after.expect("no new peer served within IdleTimeout + 2 s");
    assert!(
        served_after >= Duration::from_millis(IDLE * 900),
        "served after {served_after:?}, before IdleTimeout"
    );
    for peer in &mut silent {
        assert!(
            closed_by_driver(peer, Duration::from_secs(1)),
            "a silent peer was not cut off"
        );
    }
    assert_eq!(stats(&harness).idle_closed, 4);
    assert_clean(&harness.unload());
}

#[test]
fn a_peer_that_stops_reading_is_cut_off_with_the_drivers_send_pending() {
    let opts = options(&["127.0.0.1:0"])
        .with_buffer_size(8192)
        .and_then(|o| o.with_idle_timeout(1))
        .expect("valid options");
    let (harness, listening) = start(opts);
    let mut stream = connect(listening[0]);
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let chunk = vec![0x5a_u8; 65536];
    let started = Instant::now();
    // Write without reading until everything is full and the write blocks, then go on trying:
    // the driver resets the connection once it has made no progress for a second.
    let mut reset = false;
    while started.elapsed() < Duration::from_secs(5) {
        match stream.write(&chunk) {
            Ok(_) => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                reset = true;
                break;
            }
        }
    }
    assert!(reset, "the stalled peer was never cut off");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "cut off after {:?}, before IdleTimeout",
        started.elapsed()
    );
    assert_eq!(stats(&harness).idle_closed, 1);
    assert_clean(&harness.unload());
}

#[test]
fn a_listener_that_stops_working_is_reopened_on_its_address() {
    let (harness, listening) = start_on_fixed_port(|_| {});
    harness.wsk().fail_listeners();
    wait_for("listeners closed", Duration::from_secs(10), || {
        harness.wsk().listening().is_empty()
    });
    // Reopened one tick after the next tick found them down: within 3 s.
    wait_for("listeners reopened", Duration::from_secs(5), || {
        harness.wsk().listening().len() == 2
    });
    for addr in listening {
        assert!(new_peer_served(addr), "{addr} not served after the reopen");
    }
    let counters = stats(&harness);
    assert_eq!(counters.listener_reopens, 2);
    assert_eq!(counters.listeners_open, 2);
    assert_eq!(counters.failures, 0, "a recovered listener is no failure");
    assert_clean(&harness.unload());
}

#[test]
fn a_listener_whose_reopen_fails_is_retried_later() {
    let (harness, listening) = start_on_fixed_port(|_| {});
    // The two reopens' first binds fail (port taken), the next ones succeed.
    harness
        .wsk()
        .inject(FaultOp::Bind, 1, NtStatus::ADDRESS_ALREADY_EXISTS);
    harness
        .wsk()
        .inject(FaultOp::Bind, 1, NtStatus::ADDRESS_ALREADY_EXISTS);
    harness.wsk().fail_listeners();
    wait_for("listeners reopened", Duration::from_secs(10), || {
        harness.wsk().listening().len() == 2
    });
    let counters = stats(&harness);
    assert_eq!(
        counters.listener_reopens, 4,
        "one failed attempt each, then one that worked"
    );
    assert_eq!(counters.listeners_open, 2);
    for addr in listening {
        assert!(new_peer_served(addr));
    }
    assert_clean(&harness.unload());
}

#[test]
fn no_delay_sets_tcp_nodelay_on_every_accepted_connection_and_only_then() {
    for no_delay in [1, 0] {
        let opts = options(&["127.0.0.1:0"])
            .with_no_delay(no_delay)
            .expect("valid options");
        let (harness, listening) = start(opts);
        let mut peers: Vec<TcpStream> = (0..3).map(|_| connect(listening[0])).collect();
        for peer in &mut peers {
            assert!(served(peer, 1000));
        }
        let counters = harness.wsk().counters();
        assert_eq!(counters.accepted, 3);
        assert_eq!(
            counters.no_delay,
            3 * u64::from(no_delay),
            "NoDelay = {no_delay}"
        );
        drop(peers);
        assert_clean(&harness.unload());
    }
}

#[test]
fn a_failed_tcp_nodelay_leaves_the_connection_served() {
    let (harness, listening) = start(options(&["127.0.0.1:0"]));
    harness
        .wsk()
        .inject(FaultOp::SetNoDelay, 1, NtStatus::INVALID_DEVICE_STATE);
    let mut peer = connect(listening[0]);
    assert!(
        served(&mut peer, 5000),
        "not served after the option failed"
    );
    assert_eq!(harness.wsk().counters().no_delay, 0);
    assert_eq!(stats(&harness).failures, 0);
    drop(peer);
    assert_clean(&harness.unload());
}

#[test]
fn unload_with_the_timer_armed_leaves_no_tick_behind() {
    // The timer is armed from the attach on; the detach cancels it. A detach that completed
    // with it armed, or a tick after the detach, is a contract violation of the emulation.
    let (harness, _) = start(options(&["127.0.0.1:0"]));
    std::thread::sleep(Duration::from_millis(1500)); // a tick or two re-armed it
    let report = harness.unload();
    assert_clean(&report);
}
