//! Injected faults with the real core: WSK operations completing with errors, listeners that
//! stop working, accept events that cannot be enabled, sockets that cannot be created, a
//! failed or declined NMR attach, and the connection limit. Each must take a clean path: the
//! affected object goes away, the rest keeps serving, and Unload leaks nothing.

mod common;

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    time::Duration,
};

use common::{LOOPBACK, assert_clean, connect, options, start, wait_for};
use wsk_harness::{
    harness::Harness,
    nmr::ProviderCharacteristics,
    wsk::{FaultOp, InlineMode, WskMode},
};
use wsk_primitives::status::NtStatus;

/// Sends `payload`, half-closes, reads to the end; `Ok(echo)` or the error seen.
fn exchange(addr: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    exchange_on(connect(addr), payload)
}

/// [`exchange`] over a connection the caller made.
fn exchange_on(mut stream: TcpStream, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(payload)?;
    stream.shutdown(Shutdown::Write)?;
    let mut back = Vec::new();
    stream.read_to_end(&mut back)?;
    Ok(back)
}

#[test]
fn receive_and_send_errors_close_only_that_connection() {
    let mut opts = options(&["127.0.0.1:0"]);
    opts.wsk = WskMode {
        inline: InlineMode::Never,
        ..WskMode::default()
    };
    let (harness, listening) = start(opts);
    let addr = listening[0];

    harness
        .wsk()
        .inject(FaultOp::Receive, 1, NtStatus::CONNECTION_RESET);
    let failed = exchange(addr, b"first");
    assert!(
        !matches!(&failed, Ok(back) if back == b"first"),
        "{failed:?}"
    );
    assert_eq!(exchange(addr, b"second").expect("echo"), b"second");

    harness
        .wsk()
        .inject(FaultOp::Send, 1, NtStatus::CONNECTION_ABORTED);
    let failed = exchange(addr, b"third");
    assert!(
        !matches!(&failed, Ok(back) if back == b"third"),
        "{failed:?}"
    );
    assert_eq!(exchange(addr, b"fourth").expect("echo"), b"fourth");

    harness
        .wsk()
        .inject(FaultOp::Disconnect, 1, NtStatus::CONNECTION_RESET);
    let _ = exchange(addr, b"fifth");
    assert_eq!(exchange(addr, b"sixth").expect("echo"), b"sixth");

    wait_for("connections closed", Duration::from_secs(10), || {
        harness.wsk().open_sockets() == 1
    });
    let report = harness.unload();
    assert_clean(&report);
    assert_eq!(report.accepted, 6);
}

#[test]
fn a_listener_that_stops_working_is_closed_and_the_rest_unloads_cleanly() {
    let (harness, listening) = start(options(&LOOPBACK));
    harness.wsk().fail_listeners();
    wait_for("listeners closed", Duration::from_secs(10), || {
        harness.wsk().listening().is_empty()
    });
    wait_for("sockets closed", Duration::from_secs(10), || {
        harness.wsk().open_sockets() == 0
    });
    for addr in listening {
        assert!(TcpStream::connect(addr).is_err(), "{addr} still accepts");
    }
    assert_clean(&harness.unload());
}

#[test]
fn accept_events_that_cannot_be_enabled_open_no_listener() {
    let harness = Harness::start_with(options(&LOOPBACK), |h| {
        h.wsk().inject(
            FaultOp::EnableAcceptEvents,
            1,
            NtStatus::INSUFFICIENT_RESOURCES,
        );
    })
    .expect("harness starts");
    // Nothing can be served: DriverEntry fails with the status, after deregistering.
    assert_eq!(
        harness.driver_entry_status(),
        NtStatus::INSUFFICIENT_RESOURCES
    );
    assert!(harness.driver().is_none(), "no driver left loaded");
    assert!(!harness.nmr().client_registered(), "deregistered");
    let error = harness
        .wait_listening(Duration::from_millis(500))
        .expect_err("no listener");
    assert!(error.0.contains("DriverEntry failed"), "{error}");
    let problems = harness.pool().recent_problems();
    assert!(
        problems.iter().any(|l| l.contains("WskControlClient"))
            && problems.iter().any(|l| l.contains("start failed")),
        "the log says why: {problems:?}"
    );
    assert_eq!(harness.wsk().open_sockets(), 0);
    assert_clean(&harness.unload());
}

#[test]
fn socket_creation_and_bind_failures_are_reported_and_leak_nothing() {
    for (op, status, text) in [
        (
            FaultOp::Open,
            NtStatus::INSUFFICIENT_RESOURCES,
            "insufficient resources",
        ),
        (
            FaultOp::Bind,
            NtStatus::ADDRESS_ALREADY_EXISTS,
            "address already in use",
        ),
    ] {
        let harness = Harness::start_with(options(&LOOPBACK), |h| h.wsk().inject(op, 2, status))
            .expect("harness starts");
        assert_eq!(
            harness.driver_entry_status(),
            NtStatus::SUCCESS,
            "one endpoint serves: the start succeeds"
        );
        let error = harness
            .wait_listening(Duration::from_secs(5))
            .expect_err("one listener fails");
        // The listeners open from their work items in no fixed order: the second call is
        // either one's.
        let ipv6_failed = error.0.contains("[::1]:0");
        assert!(
            (ipv6_failed || error.0.contains("127.0.0.1:0")) && error.0.contains(text),
            "{error}"
        );
        // The other listener serves regardless.
        wait_for("the other listener", Duration::from_secs(5), || {
            harness.wsk().listening().len() == 1
        });
        let addr = harness.wsk().listening()[0];
        assert_eq!(
            addr.is_ipv4(),
            ipv6_failed,
            "{addr} is the listener that failed"
        );
        assert_eq!(exchange(addr, b"still here").expect("echo"), b"still here");
        assert_clean(&harness.unload());
    }
}

#[test]
fn a_failed_or_declined_attach_leaves_nothing_behind() {
    let failed = Harness::start_with(options(&LOOPBACK), |h| {
        h.nmr()
            .fail_next_client_attach(NtStatus::INSUFFICIENT_RESOURCES);
    })
    .expect("harness starts");
    assert!(failed.wait_listening(Duration::from_millis(300)).is_err());
    assert_eq!(
        failed.driver_entry_status(),
        NtStatus::INSUFFICIENT_RESOURCES,
        "the failed attach fails DriverEntry with its status"
    );
    assert!(failed.driver().is_none());
    assert!(!failed.nmr().client_registered(), "deregistered");
    assert_eq!(failed.nmr().binding_count(), 0);
    let report = failed.unload();
    assert_clean(&report);
    assert_eq!(report.detach, "none");

    let declined = Harness::start_with(options(&LOOPBACK), |h| {
        // A WSK subsystem that only speaks 2.0: the driver needs 1.0 and declines.
        h.wsk().set_characteristics(ProviderCharacteristics {
            highest_version: 0x0200,
            lowest_version: 0x0200,
        });
    })
    .expect("harness starts");
    assert!(declined.wait_listening(Duration::from_millis(300)).is_err());
    assert_eq!(declined.driver_entry_status(), NtStatus::NOINTERFACE);
    assert!(declined.driver().is_none());
    assert_eq!(declined.nmr().binding_count(), 0);
    assert_clean(&declined.unload());
}

#[test]
fn connections_beyond_max_connections_are_refused() {
    let opts = options(&["127.0.0.1:0"])
        .with_max_connections(2)
        .expect("valid");
    let (harness, listening) = start(opts);
    let first = connect(listening[0]);
    let second = connect(listening[0]);
    wait_for("two accepted", Duration::from_secs(10), || {
        harness.wsk().counters().accepted == 2
    });
    let mut third = connect(listening[0]);
    wait_for("third refused", Duration::from_secs(10), || {
        harness.wsk().counters().refused == 1
    });
    let mut buf = [0_u8; 8];
    assert!(!matches!(third.read(&mut buf), Ok(n) if n > 0));
    drop(first);
    wait_for("a slot frees", Duration::from_secs(10), || {
        harness.wsk().open_sockets() == 2
    });
    assert_eq!(
        exchange(listening[0], b"room again").expect("echo"),
        b"room again"
    );
    drop(second);
    let report = harness.unload();
    assert_clean(&report);
    assert_eq!(report.refused, 1);
    assert_eq!(report.accepted, 3);
}

/// A TCP connection to `to` from local address `from` (any 127/8 address is this machine).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let from: SocketAddr = format!("{from}:0").parse().expect("address");
    socket.bind(&from.into()).expect("bind the source address");
    socket.connect(&to.into()).expect("connect");
    socket.into()
}

#[test]
fn one_address_holds_its_quota_while_another_is_served() {
    let opts = options(&["127.0.0.1:0"])
        .with_max_connections_per_address(2)
        .expect("valid");
    let (harness, listening) = start(opts);
    let addr = listening[0];
    let held = [
        connect_from("127.0.0.1", addr),
        connect_from("127.0.0.1", addr),
    ];
    wait_for("two accepted", Duration::from_secs(10), || {
        harness.wsk().counters().accepted == 2
    });
    let mut third = connect_from("127.0.0.1", addr);
    wait_for("the third refused", Duration::from_secs(10), || {
        harness.wsk().counters().refused == 1
    });
    let mut buf = [0_u8; 8];
    assert!(!matches!(third.read(&mut buf), Ok(n) if n > 0));
    // Another address is served while 127.0.0.1 holds its quota.
    let other = exchange_on(connect_from("127.0.0.2", addr), b"other").expect("echo");
    assert_eq!(other, b"other");
    // Closing one frees its place in the quota.
    drop(held);
    wait_for("both closed", Duration::from_secs(10), || {
        harness.wsk().open_sockets() == 1
    });
    let again = exchange_on(connect_from("127.0.0.1", addr), b"again").expect("echo");
    assert_eq!(again, b"again");
    let report = harness.unload();
    assert_clean(&report);
    assert_eq!((report.refused, report.refused_per_address), (1, 1));
    assert_eq!(report.accepted, 4);
}

#[test]
fn every_endpoint_in_use_fails_driver_entry_and_leaves_nothing_registered() {
    // Real host listeners hold both ports, so both of the driver's binds fail.
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").expect("a free IPv4 port");
    let v6 = std::net::TcpListener::bind("[::1]:0").expect("a free IPv6 port");
    let endpoints = [
        v4.local_addr().unwrap().to_string(),
        v6.local_addr().unwrap().to_string(),
    ];
    let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let harness = Harness::start(options(&endpoints)).expect("harness starts");
    assert_eq!(
        harness.driver_entry_status(),
        NtStatus::ADDRESS_ALREADY_EXISTS,
        "a driver with no listener must not start"
    );
    assert!(harness.driver().is_none());
    assert!(!harness.nmr().client_registered(), "deregistered");
    let problems = harness.pool().recent_problems();
    assert!(
        problems
            .iter()
            .any(|l| l.contains("start failed: none of the 2 listener(s) could be opened")),
        "{problems:?}"
    );
    assert_clean(&harness.unload());
}
