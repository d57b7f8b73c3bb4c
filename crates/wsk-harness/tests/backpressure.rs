//! A client that sends without reading: the driver holds at most its echo buffer for it, and
//! its pool usage does not grow with what the client keeps sending.

mod common;

use std::{io::Write, time::Duration};

use common::{assert_clean, connect, options, start, wait_for};

const BUFFER_SIZE: u32 = 8192;

#[test]
fn a_client_that_never_reads_costs_a_bounded_amount_of_driver_memory() {
    let mut opts = options(&["127.0.0.1:0"]);
    opts = opts
        .with_buffer_size(BUFFER_SIZE)
        .expect("valid buffer size");
    let (harness, listening) = start(opts);
    let idle = connect(listening[0]);
    wait_for("accept", Duration::from_secs(10), || {
        harness.wsk().counters().accepted == 1
    });
    std::thread::sleep(Duration::from_millis(100));
    let with_one_connection = harness.pool().outstanding_bytes();
    drop(idle);
    wait_for("idle connection closed", Duration::from_secs(10), || {
        harness.wsk().open_sockets() == 1
    });

    let mut stream = connect(listening[0]);
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let chunk = vec![0x5a_u8; 65536];
    let mut sent = 0_usize;
    // Write until the socket buffers on both sides are full and the write blocks.
    while sent < 256 << 20 {
        match stream.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(
        sent < 256 << 20,
        "the writer never blocked: nothing pushes back"
    );
    // Let the driver settle, then check it holds no more than one echo buffer's worth.
    std::thread::sleep(Duration::from_millis(300));
    let counters = harness.wsk().counters();
    let in_driver = counters.bytes_received - counters.bytes_sent;
    assert!(
        in_driver <= u64::from(BUFFER_SIZE),
        "driver holds {in_driver} bytes (buffer {BUFFER_SIZE})"
    );
    let outstanding = harness.pool().outstanding_bytes();
    assert!(
        outstanding <= with_one_connection,
        "pool grew from {with_one_connection} to {outstanding} bytes while the client kept sending {sent} bytes"
    );
    assert!(
        harness.pool().peak_bytes() <= with_one_connection * 2,
        "peak {}",
        harness.pool().peak_bytes()
    );

    let report = harness.unload();
    assert_clean(&report);
    drop(stream);
}
