//! Shared helpers of the harness tests: starting a machine on loopback ephemeral ports, echo
//! clients, a small deterministic PRNG.

#![allow(dead_code)] // Each test file uses a different subset.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use wsk_harness::harness::{Harness, Options, Report};
use wskecho_echo::ECHO;

/// Loopback listeners on ephemeral ports, IPv4 and IPv6.
pub const LOOPBACK: [&str; 2] = ["127.0.0.1:0", "[::1]:0"];

/// Options for the sample's echo service on `listen`, with the driver's defaults otherwise.
pub fn options(listen: &[&str]) -> Options {
    Options::new(ECHO, listen).expect("valid options")
}

/// Starts a machine and waits for its listeners.
pub fn start(options: Options) -> (Harness, Vec<SocketAddr>) {
    let harness = Harness::start(options).expect("harness starts");
    let listening = harness
        .wait_listening(Duration::from_secs(10))
        .expect("listeners open");
    (harness, listening)
}

/// Starts a machine listening on one fixed port number on both `127.0.0.1` and `::1` (so that
/// listeners can be seen to reopen on the same port), with `configure` applied to the
/// options. Retries with another port if one picked as free was taken meanwhile.
pub fn start_on_fixed_port(configure: impl Fn(&mut Options)) -> (Harness, Vec<SocketAddr>) {
    for _ in 0..5 {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = v4.local_addr().expect("local address").port();
        drop(v4);
        let listen = [format!("127.0.0.1:{port}"), format!("[::1]:{port}")];
        let mut opts = options(&[&listen[0], &listen[1]]);
        configure(&mut opts);
        let harness = Harness::start(opts).expect("harness starts");
        match harness.wait_listening(Duration::from_secs(10)) {
            Ok(listening) => return (harness, listening),
            Err(error) => {
                assert!(error.0.contains("in use"), "{error}");
                assert_clean(&harness.unload());
            }
        }
    }
    panic!("no free port found in 5 tries");
}

/// Asserts a report shows no violation and no leak.
pub fn assert_clean(report: &Report) {
    assert!(
        report.violations.is_empty(),
        "contract violations: {:#?}",
        report.violations
    );
    assert_eq!(
        report.pool_outstanding_bytes, 0,
        "leaks: {:#?}",
        report.leaks
    );
    assert!(report.clean());
}

/// xorshift64*: deterministic, seeded per test.
pub struct Rng(u64);

impl Rng {
    pub const fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub const fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + usize::try_from(self.next() % ((hi - lo + 1) as u64)).unwrap()
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next().to_le_bytes()[3]).collect()
    }
}

/// Connects with generous timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Sends `payload` in random-sized chunks from a second thread while reading the echo, then
/// half-closes; returns everything read until the server's FIN.
pub fn echo_in_chunks(addr: SocketAddr, payload: Vec<u8>, seed: u64) -> io::Result<Vec<u8>> {
    let stream = connect(addr);
    let mut writer = stream.try_clone()?;
    let sender = std::thread::spawn(move || -> io::Result<()> {
        let mut rng = Rng::new(seed);
        let mut sent = 0;
        while sent < payload.len() {
            let n = rng.range(1, 8192).min(payload.len() - sent);
            writer.write_all(&payload[sent..sent + n])?;
            sent += n;
            if rng.range(0, 16) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        writer.shutdown(Shutdown::Write)
    });
    let mut back = Vec::new();
    let mut reader = stream;
    let read = reader.read_to_end(&mut back);
    sender.join().expect("sender thread")?;
    read?;
    Ok(back)
}

/// Polls `done` until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
