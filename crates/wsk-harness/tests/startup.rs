//! Start-up failures: a port already in use at attach is a clear error and leaks nothing.

mod common;

use std::{net::TcpListener, time::Duration};

use common::{assert_clean, options};
use wsk_harness::harness::Harness;

#[test]
fn port_in_use_at_attach_is_a_clear_error_and_leaks_nothing() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let harness = Harness::start(options(&[&addr, "[::1]:0"])).expect("harness starts");
    let error = harness
        .wait_listening(Duration::from_secs(10))
        .expect_err("bind must fail");
    assert!(error.0.contains(&addr), "{error}");
    assert!(error.0.contains("STATUS_ADDRESS_ALREADY_EXISTS"), "{error}");
    let report = harness.unload();
    assert_clean(&report);
    drop(taken);
}
