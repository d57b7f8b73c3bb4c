//! Services other than echo on the same client: "reverse each line" and "discard", each
//! written here against the handler API alone (`ConnectionHandler`, `Buffer`, `Service`) and
//! run by the unchanged socket runner over the emulated NMR + WSK and real sockets.

mod common;

use std::{
    io::{Read, Write},
    net::Shutdown,
    ops::Range,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::Duration,
};

use common::{LOOPBACK, assert_clean, connect, start, wait_for};
use wsk_client::{
    config::Config,
    handler::{Buffer, ConnectionHandler, Service},
};
use wsk_harness::harness::Options;

/// Sends back each line (up to and including `\n`) with its bytes reversed, one line at a
/// time; a line longer than the buffer goes back a buffer at a time, and what is left when the
/// peer finishes goes back as a last line. It receives nothing while a line is being sent.
#[derive(Debug)]
struct ReverseLines {
    capacity: usize,
    /// Bytes at the start of the buffer: the line being sent, then input not yet looked at.
    filled: usize,
    /// End of the line being sent (0: none).
    line_end: usize,
    /// The line's bytes not yet sent.
    unsent: Range<usize>,
    peer_finished: bool,
}

impl ReverseLines {
    /// If no line is being sent, reverses the next complete one in place and queues it.
    fn next_line(&mut self, buffer: &mut Buffer<'_>) {
        if self.line_end != 0 {
            return;
        }
        let Some(bytes) = buffer.get_mut(0..self.filled) else {
            return;
        };
        let end = match bytes.iter().position(|&b| b == b'\n') {
            Some(newline) => {
                bytes[..newline].reverse();
                newline + 1
            }
            None if self.filled > 0 && (self.filled == self.capacity || self.peer_finished) => {
                bytes.reverse();
                self.filled
            }
            None => return,
        };
        self.line_end = end;
        self.unsent = 0..end;
    }
}

impl ConnectionHandler for ReverseLines {
    fn buffer_size(config: &Config) -> usize {
        config.buffer_size() as usize
    }

    fn new(_config: &Config, buffer_size: usize) -> Self {
        Self {
            capacity: buffer_size,
            filled: 0,
            line_end: 0,
            unsent: 0..0,
            peer_finished: false,
        }
    }

    fn next_receive(&mut self) -> Option<Range<usize>> {
        (self.line_end == 0 && self.filled < self.capacity).then_some(self.filled..self.capacity)
    }

    fn received(&mut self, buffer: &mut Buffer<'_>, n: usize) {
        self.filled += n;
        self.next_line(buffer);
    }

    fn receive_abandoned(&mut self) {}

    fn peer_finished(&mut self, buffer: &mut Buffer<'_>) {
        self.peer_finished = true;
        self.next_line(buffer);
    }

    fn next_send(&mut self) -> Option<Range<usize>> {
        (!self.unsent.is_empty()).then(|| self.unsent.clone())
    }

    fn sent(&mut self, buffer: &mut Buffer<'_>, n: usize) {
        self.unsent.start += n;
        if !self.unsent.is_empty() {
            return;
        }
        if let Some(bytes) = buffer.get_mut(0..self.filled) {
            bytes.copy_within(self.line_end.., 0);
        }
        self.filled -= self.line_end;
        self.line_end = 0;
        self.next_line(buffer);
    }

    fn send_abandoned(&mut self) {}
}

const REVERSE_LINES: Service = Service::of::<ReverseLines>();

fn reversed(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in input.split_inclusive(|&b| b == b'\n') {
        let (body, newline) = match line.split_last() {
            Some((b'\n', body)) => (body, true),
            _ => (line, false),
        };
        out.extend(body.iter().rev());
        if newline {
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn a_handler_written_against_the_library_serves_connections() {
    let (harness, listening) = start(Options::new(REVERSE_LINES, &LOOPBACK).expect("options"));
    let input = b"hello\nworld\n\nWinsock Kernel\nno newline at the end";
    for &addr in &listening {
        let mut stream = connect(addr);
        stream.write_all(input).expect("write");
        stream.shutdown(Shutdown::Write).expect("half-close");
        let mut back = Vec::new();
        stream.read_to_end(&mut back).expect("read");
        let expected = reversed(input);
        assert!(
            back == expected,
            "{addr}: {} bytes back, {} expected; starts {:?}",
            back.len(),
            expected.len(),
            String::from_utf8_lossy(&back[..back.len().min(64)])
        );
    }
    wait_for("connections closed", Duration::from_secs(10), || {
        harness.wsk().open_sockets() == listening.len()
    });
    assert_eq!(harness.wsk().counters().graceful, listening.len() as u64);
    let report = harness.unload();
    assert_clean(&report);
}

#[test]
fn lines_longer_than_the_buffer_go_back_a_buffer_at_a_time() {
    let opts = Options::new(REVERSE_LINES, &LOOPBACK[..1])
        .and_then(|o| o.with_buffer_size(4096))
        .expect("options");
    let (harness, listening) = start(opts);
    let mut stream = connect(listening[0]);
    let line: Vec<u8> = (0..10_000_u32).map(|i| b'a' + (i % 26) as u8).collect();
    stream.write_all(&line).expect("write");
    stream.write_all(b"\n").expect("write");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut back = Vec::new();
    stream.read_to_end(&mut back).expect("read");
    let mut expected: Vec<u8> = line
        .chunks(4096)
        .flat_map(|c| c.iter().rev())
        .copied()
        .collect();
    expected.push(b'\n');
    assert_eq!(back.len(), expected.len());
    assert!(back == expected, "lines longer than the buffer");
    let report = harness.unload();
    assert_clean(&report);
}

/// Reads everything, sends nothing; counts what it received and how many of it were dropped.
#[derive(Debug)]
struct Discard {
    capacity: usize,
}

static DISCARDED: AtomicU64 = AtomicU64::new(0);
static DISCARDS_DROPPED: AtomicUsize = AtomicUsize::new(0);

impl Drop for Discard {
    fn drop(&mut self) {
        DISCARDS_DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

impl ConnectionHandler for Discard {
    fn buffer_size(_config: &Config) -> usize {
        1024
    }

    fn new(_config: &Config, buffer_size: usize) -> Self {
        Self {
            capacity: buffer_size,
        }
    }

    fn next_receive(&mut self) -> Option<Range<usize>> {
        Some(0..self.capacity)
    }

    fn received(&mut self, _buffer: &mut Buffer<'_>, n: usize) {
        DISCARDED.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn receive_abandoned(&mut self) {}

    fn peer_finished(&mut self, _buffer: &mut Buffer<'_>) {}

    fn next_send(&mut self) -> Option<Range<usize>> {
        None
    }

    fn sent(&mut self, _buffer: &mut Buffer<'_>, _n: usize) {}

    fn send_abandoned(&mut self) {}
}

#[test]
fn a_discard_service_reads_everything_and_each_handler_is_dropped() {
    const CONNECTIONS: usize = 5;
    const BYTES: usize = 100_000;
    let (harness, listening) =
        start(Options::new(Service::of::<Discard>(), &LOOPBACK).expect("options"));
    for n in 0..CONNECTIONS {
        let mut stream = connect(listening[n % listening.len()]);
        stream.write_all(&vec![0x5a; BYTES]).expect("write");
        stream.shutdown(Shutdown::Write).expect("half-close");
        let mut back = Vec::new();
        stream.read_to_end(&mut back).expect("read");
        assert!(back.is_empty(), "discard sent {} bytes", back.len());
    }
    wait_for("connections closed", Duration::from_secs(10), || {
        harness.wsk().open_sockets() == listening.len()
    });
    let report = harness.unload();
    assert_clean(&report);
    assert_eq!(
        DISCARDED.load(Ordering::Relaxed),
        (CONNECTIONS * BYTES) as u64
    );
    assert_eq!(DISCARDS_DROPPED.load(Ordering::Relaxed), CONNECTIONS);
}
