//! Part 4: pool memory per connection, idle and busy (goal: at most 2 × `BufferSize` + 1 KiB).
//!
//! Counted as the harness pool accounts it: the driver's allocations plus the emulated WSK's
//! stand-in for a socket's IRPs and MDL.

use std::{
    io::{ErrorKind, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use wsk_client::socket::CONNECTION_TAG;
use wsk_harness::{harness::Harness, wsk::IRP_TAG};
use wsk_primitives::platform::PoolTag;

use super::{
    check_clean, check_contract, driver_stats, loopback_options, settled, start, wait_until,
};
use crate::report::{Goal, Part, Row};

/// Connections measured in each state.
const CONNECTIONS: usize = 100;
/// How long the busy clients keep writing before their writes stop making progress.
const FILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Pool bytes of one state, per connection (or, for the state at rest, in all).
#[derive(Clone, Copy)]
struct PerConnection {
    total: u64,
    connection_tag: u64,
    irp_tag: u64,
}

/// Measures part 4.
///
/// # Errors
/// The harness failed, the connections did not reach the state measured, or a contract
/// violation or leak was recorded.
pub fn run() -> Result<Part, String> {
    let (harness, addr) = start(loopback_options()?)?;
    let buffer_size = u64::from(
        harness
            .driver()
            .ok_or("no driver")?
            .client()
            .config()
            .buffer_size(),
    );
    let result = measure(&harness, addr, buffer_size);
    let report = harness.unload();
    let rows = result?;
    check_clean(&report, "memory")?;
    Ok(Part {
        name: "4-memory".into(),
        title: "4 memory".into(),
        rows,
    })
}

fn measure(harness: &Harness, addr: SocketAddr, buffer_size: u64) -> Result<Vec<Row>, String> {
    let goal = Goal::AtMost(to_f64(2 * buffer_size + 1024));
    let base = at_rest(harness)?;

    let idle = connect_all(addr)?;
    let idle_cost = per_connection(harness, base)?;
    drop(idle);
    wait_until(
        "the idle connections to close",
        Duration::from_secs(10),
        || {
            driver_stats(harness).active == 0
                && harness.pool().outstanding_bytes() as u64 == base.total
        },
    )?;

    let mut busy = connect_all(addr)?;
    let held = fill(harness, &mut busy, buffer_size)?;
    let busy_cost = per_connection(harness, base)?;
    check_contract(harness, "memory")?;
    drop(busy);
    eprintln!(
        "  per connection: idle {} B, busy {} B (driver holds {held} B of echo each)",
        idle_cost.total, busy_cost.total
    );
    let note = |state: &str, cost: &PerConnection| {
        format!(
            "{CONNECTIONS} {state} connections, (pool bytes - bytes before) / {CONNECTIONS}: \
             WEcn {} B (connection state + its {buffer_size} B echo buffer, one block) + \
             `Irp ` {} B (the emulated WSK's stand-in for the socket's IRPs and MDL) + \
             other tags {} B; goal 2 × {buffer_size} + 1024",
            cost.connection_tag,
            cost.irp_tag,
            cost.total
                .saturating_sub(cost.connection_tag)
                .saturating_sub(cost.irp_tag)
        )
    };
    Ok(vec![
        Row::new(
            "pool bytes per idle connection",
            to_f64(idle_cost.total),
            "bytes",
        )
        .with_goal(goal)
        .with_note(note("idle (accepted, no data)", &idle_cost)),
        Row::new(
            "pool bytes per busy connection",
            to_f64(busy_cost.total),
            "bytes",
        )
        .with_goal(goal)
        .with_note(format!(
            "{}; busy = the client sends and never reads, the driver holds {held} B of unsent \
                 echo per connection (its buffer full)",
            note("busy", &busy_cost)
        )),
    ])
}

#[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
const fn to_f64(value: u64) -> f64 {
    value as f64
}

/// Opens `CONNECTIONS` connections and waits until the driver has accepted all of them.
fn connect_all(addr: SocketAddr) -> Result<Vec<TcpStream>, String> {
    (0..CONNECTIONS)
        .map(|_| TcpStream::connect(addr).map_err(|e| format!("connect: {e}")))
        .collect()
}

/// Waits until the driver has all `CONNECTIONS` open and the pool is steady, then returns
/// the pool bytes above `base` per connection.
fn per_connection(harness: &Harness, base: PerConnection) -> Result<PerConnection, String> {
    wait_until(
        "the driver to accept every connection",
        Duration::from_secs(10),
        || driver_stats(harness).active == CONNECTIONS as u64,
    )?;
    let pool = harness.pool();
    let total = settled("pool bytes", Duration::from_secs(10), || {
        pool.outstanding_bytes() as u64
    })?;
    let n = CONNECTIONS as u64;
    Ok(PerConnection {
        total: total.saturating_sub(base.total) / n,
        connection_tag: tagged(harness, CONNECTION_TAG).saturating_sub(base.connection_tag) / n,
        irp_tag: tagged(harness, IRP_TAG).saturating_sub(base.irp_tag) / n,
    })
}

/// Sends on every connection without reading until no write makes progress any more and the
/// driver's unsent echo has settled; returns what the driver holds per connection.
fn fill(harness: &Harness, streams: &mut [TcpStream], buffer_size: u64) -> Result<u64, String> {
    let chunk = vec![0x5a_u8; 65536];
    for stream in streams.iter() {
        stream
            .set_nonblocking(true)
            .map_err(|e| format!("set_nonblocking: {e}"))?;
    }
    let deadline = Instant::now() + FILL_TIMEOUT;
    loop {
        let mut progress = false;
        for stream in streams.iter_mut() {
            loop {
                match stream.write(&chunk) {
                    Ok(0) => break,
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("busy client: {e}")),
                }
            }
        }
        if !progress {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!("busy clients still writing after {FILL_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let in_driver = settled("the driver's unsent echo", Duration::from_secs(10), || {
        let counters = harness.wsk().counters();
        counters.bytes_received - counters.bytes_sent
    })?;
    let held = in_driver / CONNECTIONS as u64;
    if held * 2 < buffer_size {
        return Err(format!(
            "busy connections hold only {held} B of echo each (buffer {buffer_size} B): not busy"
        ));
    }
    Ok(held)
}

/// Pool bytes with `tag` now.
fn tagged(harness: &Harness, tag: PoolTag) -> u64 {
    harness.pool().outstanding_bytes_with_tag(tag) as u64
}

/// Pool bytes once the pool is steady with no connection open (binding and listener, with
/// the listener's own `Irp ` block), in all and per tag.
fn at_rest(harness: &Harness) -> Result<PerConnection, String> {
    let total = settled("pool bytes at rest", Duration::from_secs(5), || {
        harness.pool().outstanding_bytes() as u64
    })?;
    Ok(PerConnection {
        total,
        connection_tag: tagged(harness, CONNECTION_TAG),
        irp_tag: tagged(harness, IRP_TAG),
    })
}
