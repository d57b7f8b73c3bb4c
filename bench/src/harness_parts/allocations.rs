//! Part 3: pool allocations per echoed message in steady state (goal: 0), counted by the
//! harness pool's allocation attempts (every `Platform::allocate` call, failed or not).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{Arc, Barrier},
    thread::JoinHandle,
    time::Duration,
};

use wsk_harness::harness::Harness;

use super::{
    check_clean, check_contract, driver_stats, loopback_options, settled, start, wait_until,
};
use crate::report::{Goal, Part, Row};

/// Messages counted in steady state.
pub const MESSAGES: usize = 100_000;
/// Connections echoing them at once (each in lockstep: send, read the echo back).
const CONNECTIONS: usize = 4;
/// Bytes per message.
const PAYLOAD: usize = 64;
/// Messages per connection before counting starts.
const WARM_UP: usize = 200;
/// Connections opened and closed one after another for the per-connection count.
const LIFETIMES: usize = 100;

/// Measures part 3.
///
/// # Errors
/// The harness failed, an echo was wrong, a contract violation or leak was recorded, or the
/// allocation counter saw nothing where allocations must happen.
pub fn run() -> Result<Part, String> {
    let (harness, addr) = start(loopback_options()?)?;
    let result = measure(&harness, addr);
    let report = harness.unload();
    let rows = result?;
    check_clean(&report, "allocations")?;
    Ok(Part {
        name: "3-allocations".into(),
        title: "3 allocations".into(),
        rows,
    })
}

fn measure(harness: &Harness, addr: SocketAddr) -> Result<Vec<Row>, String> {
    let pool = harness.pool();
    // Per connection lifetime first: proves the counter sees the driver's allocations.
    let before = pool.attempts();
    for n in 0..LIFETIMES {
        let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        exchange(&mut stream, n, 0)?;
    }
    wait_until("the connections to close", Duration::from_secs(10), || {
        driver_stats(harness).active == 0
    })?;
    let per_lifetime = ratio(pool.attempts() - before, LIFETIMES);
    if per_lifetime < 1.0 {
        return Err(format!(
            "the pool saw {per_lifetime} allocations per connection: the counter does not see the driver's allocations"
        ));
    }

    // Steady state: warmed-up connections, counter read between two barriers.
    let start_line = Arc::new(Barrier::new(CONNECTIONS + 1));
    let clients: Vec<JoinHandle<Result<(), String>>> = (0..CONNECTIONS)
        .map(|connection| {
            let start_line = Arc::clone(&start_line);
            std::thread::spawn(move || client(addr, connection, &start_line))
        })
        .collect();
    start_line.wait(); // all warmed up
    let settle = settled(
        "pool bytes after the warm-up",
        Duration::from_secs(5),
        || pool.outstanding_bytes() as u64,
    );
    let attempts_before = pool.attempts();
    let echoed_before = driver_stats(harness).bytes_sent;
    start_line.wait(); // go (also on failure, so that no client waits forever)
    settle?;
    for client in clients {
        client
            .join()
            .map_err(|_| "allocations: client thread panicked".to_owned())??;
    }
    let allocations = pool.attempts() - attempts_before;
    let echoed = driver_stats(harness).bytes_sent - echoed_before;
    check_contract(harness, "allocations")?;
    let expected = (MESSAGES * PAYLOAD) as u64;
    if echoed != expected {
        return Err(format!(
            "the driver echoed {echoed} bytes while counting, expected {expected}"
        ));
    }
    eprintln!(
        "  {MESSAGES} messages: {allocations} allocation attempts; {per_lifetime} per connection lifetime"
    );
    Ok(vec![
        Row::new(
            "pool allocations per echoed message, steady state",
            ratio(allocations, MESSAGES),
            "allocations",
        )
        .with_goal(Goal::AtMost(0.0))
        .with_note(format!(
            "{allocations} pool allocation attempts (Pool::attempts) while {MESSAGES} × {PAYLOAD} B \
             messages were echoed in lockstep on {CONNECTIONS} connections, after {WARM_UP} warm-up \
             messages each; the driver's byte counter confirms {echoed} B echoed"
        )),
        Row::new(
            "pool allocations per connection (accept, one echo, close)",
            per_lifetime,
            "allocations",
        )
        .with_note(format!(
            "mean over {LIFETIMES} connections one after another: WEcn (state + echo buffer) and \
             the emulated WSK's `Irp ` block; shows the counter sees the driver's allocations"
        )),
    ])
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn ratio(count: usize, per: usize) -> f64 {
    count as f64 / per as f64
}

/// One lockstep exchange: message `n` of `connection`, checked byte for byte.
fn exchange(stream: &mut TcpStream, connection: usize, n: usize) -> Result<(), String> {
    let mut message = [0_u8; PAYLOAD];
    for (i, byte) in message.iter_mut().enumerate() {
        *byte = (connection.wrapping_mul(131) ^ n.wrapping_mul(31) ^ i).to_le_bytes()[0];
    }
    let mut back = [0_u8; PAYLOAD];
    stream
        .write_all(&message)
        .and_then(|()| stream.read_exact(&mut back))
        .map_err(|e| format!("connection {connection}, message {n}: {e}"))?;
    if back != message {
        return Err(format!(
            "connection {connection}, message {n}: the echo differs from what was sent"
        ));
    }
    Ok(())
}

fn client(addr: SocketAddr, connection: usize, start_line: &Barrier) -> Result<(), String> {
    let result = TcpStream::connect(addr)
        .and_then(|stream| {
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            Ok(stream)
        })
        .map_err(|e| format!("connect: {e}"))
        .and_then(|mut stream| {
            for n in 0..WARM_UP {
                exchange(&mut stream, connection, n)?;
            }
            Ok(stream)
        });
    // Always meet the other threads at both barriers, so a failure cannot hang the run.
    start_line.wait();
    start_line.wait();
    let mut stream = result?;
    for n in WARM_UP..WARM_UP + MESSAGES / CONNECTIONS {
        exchange(&mut stream, connection, n)?;
    }
    Ok(())
}
