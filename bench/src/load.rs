//! The load generator of the throughput and unload parts: closed-loop echo clients on tokio.
//!
//! Each connection sends one message, reads its whole echo back (writing and reading at the
//! same time, so a message larger than the socket buffers cannot deadlock), checks every byte,
//! records the round-trip time, and sends the next one. Messages differ from one another (a
//! sliding window over a per-connection random pattern), so a stale, reordered or foreign echo
//! is caught. Only messages that complete while the load is in its measuring phase count.

use std::{
    fmt, io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

/// Extra pattern bytes beyond the payload: message `k` starts at offset `k % WINDOWS`.
const WINDOWS: usize = 251;

const WARMING_UP: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

/// What went wrong on a connection.
#[derive(Debug)]
pub enum LoadError {
    /// Connecting failed.
    Connect(io::Error),
    /// Sending or receiving failed (the connection ended early, or was reset).
    Io {
        /// Index of the connection.
        connection: usize,
        /// The error.
        error: io::Error,
    },
    /// The echo differed from what was sent.
    Mismatch {
        /// Index of the connection.
        connection: usize,
        /// Index of the message on that connection.
        message: u64,
        /// Offset of the first differing byte.
        offset: usize,
    },
    /// A client task did not finish normally.
    Task(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(error) => write!(f, "connect: {error}"),
            Self::Io { connection, error } => write!(f, "connection {connection}: {error}"),
            Self::Mismatch {
                connection,
                message,
                offset,
            } => write!(
                f,
                "connection {connection}, message {message}: the echo differs from what was sent at byte {offset}"
            ),
            Self::Task(what) => write!(f, "client task: {what}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// What one run of the load measured.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Messages echoed completely during the measuring phase.
    pub messages: u64,
    /// Payload bytes sent during the measuring phase (each byte counted once).
    pub bytes: u64,
    /// Length of the measuring phase.
    pub window: Duration,
    /// Round-trip time of every message counted, in nanoseconds (unsorted).
    pub rtt_ns: Vec<u64>,
    /// Connections that ended with an I/O error (allowed only by [`Load::finish`]'s caller).
    pub io_errors: usize,
}

impl Outcome {
    /// Echoed payload in MiB/s over the measuring phase.
    #[must_use]
    pub fn mib_per_s(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
        let bytes = self.bytes as f64;
        bytes / f64::from(1 << 20) / self.window.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Messages per second over the measuring phase.
    #[must_use]
    pub fn messages_per_s(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // message counts far below 2^52
        let messages = self.messages as f64;
        messages / self.window.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

type ClientResult = Result<(u64, Vec<u64>), LoadError>;

/// A running load: `connections` closed-loop clients against one server.
pub struct Load {
    phase: Arc<AtomicU8>,
    completed: Arc<AtomicU64>,
    clients: Vec<JoinHandle<ClientResult>>,
    measuring_since: Option<Instant>,
    payload: usize,
}

impl Load {
    /// Connects `connections` clients to `addr` (all connected before any sends), then starts
    /// them echoing messages of `payload` bytes; they are warming up until
    /// [`Load::start_measuring`].
    ///
    /// # Errors
    /// A connection could not be made.
    pub async fn start(addr: SocketAddr, connections: usize, payload: usize) -> io::Result<Self> {
        let mut connecting = Vec::with_capacity(connections);
        for _ in 0..connections {
            connecting.push(tokio::spawn(TcpStream::connect(addr)));
        }
        let mut streams = Vec::with_capacity(connections);
        for handle in connecting {
            let stream = handle.await.map_err(io::Error::other)??;
            stream.set_nodelay(true)?;
            streams.push(stream);
        }
        let phase = Arc::new(AtomicU8::new(WARMING_UP));
        let completed = Arc::new(AtomicU64::new(0));
        let clients = streams
            .into_iter()
            .enumerate()
            .map(|(connection, stream)| {
                tokio::spawn(client(
                    stream,
                    connection,
                    payload,
                    Arc::clone(&phase),
                    Arc::clone(&completed),
                ))
            })
            .collect();
        Ok(Self {
            phase,
            completed,
            clients,
            measuring_since: None,
            payload,
        })
    }

    /// Messages echoed so far, all phases.
    #[must_use]
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Waits until at least `messages` messages were echoed in all, or `timeout` passed
    /// (returns whether they were).
    pub async fn wait_completed(&self, messages: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.completed() < messages {
            if Instant::now() >= deadline || self.clients.iter().all(JoinHandle::is_finished) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Ends the warm-up: messages completing from now on are counted.
    pub fn start_measuring(&mut self) {
        self.measuring_since = Some(Instant::now());
        self.phase.store(MEASURING, Ordering::SeqCst);
    }

    /// Stops the clients (each after its current message; they then close their connection)
    /// and collects what was measured. With `io_errors_allowed`, connections ending with an
    /// I/O error (e.g. reset by an unloading server) are counted instead of failing the run;
    /// a wrong echo always fails it.
    ///
    /// # Errors
    /// The first wrong echo, I/O error (unless allowed) or failed client task.
    pub async fn finish(self, io_errors_allowed: bool) -> Result<Outcome, LoadError> {
        let window = self.measuring_since.map_or(Duration::ZERO, |t| t.elapsed());
        self.phase.store(STOPPING, Ordering::SeqCst);
        let mut outcome = Outcome {
            window,
            ..Outcome::default()
        };
        let mut first_error = None;
        for handle in self.clients {
            match handle.await {
                Ok(Ok((messages, rtts))) => {
                    outcome.messages += messages;
                    outcome.rtt_ns.extend(rtts);
                }
                Ok(Err(LoadError::Io { .. })) if io_errors_allowed => outcome.io_errors += 1,
                Ok(Err(error)) => {
                    first_error.get_or_insert(error);
                }
                Err(error) => {
                    first_error.get_or_insert_with(|| LoadError::Task(error.to_string()));
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        outcome.bytes = outcome.messages * self.payload as u64;
        Ok(outcome)
    }
}

/// A per-connection pattern: `payload + WINDOWS` bytes from xorshift64 seeded by the index.
fn pattern(connection: usize, payload: usize) -> Vec<u8> {
    let mut state = (connection as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..payload + WINDOWS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[5]
        })
        .collect()
}

/// One closed-loop client: returns the messages counted and their round-trip times.
async fn client(
    mut stream: TcpStream,
    connection: usize,
    payload: usize,
    phase: Arc<AtomicU8>,
    completed: Arc<AtomicU64>,
) -> ClientResult {
    let pattern = pattern(connection, payload);
    let mut back = vec![0_u8; payload];
    let mut rtts = Vec::new();
    let mut counted = 0_u64;
    let io = |error| LoadError::Io { connection, error };
    for message in 0_u64.. {
        if phase.load(Ordering::Relaxed) == STOPPING {
            break;
        }
        #[allow(clippy::cast_possible_truncation)] // the remainder is below WINDOWS
        let offset = (message % WINDOWS as u64) as usize;
        let sent = pattern
            .get(offset..offset + payload)
            .ok_or_else(|| LoadError::Task("pattern too short".into()))?;
        let started = Instant::now();
        let (reader, writer) = stream.split();
        let (written, read) = tokio::join!(
            async move {
                let mut writer = writer;
                writer.write_all(sent).await
            },
            async {
                let mut reader = reader;
                reader.read_exact(&mut back).await
            }
        );
        written.map_err(io)?;
        read.map_err(io)?;
        let rtt = started.elapsed();
        if let Some(offset) = sent.iter().zip(&back).position(|(a, b)| a != b) {
            return Err(LoadError::Mismatch {
                connection,
                message,
                offset,
            });
        }
        completed.fetch_add(1, Ordering::Relaxed);
        if phase.load(Ordering::Relaxed) == MEASURING {
            counted += 1;
            rtts.push(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
        }
    }
    let _ = stream.shutdown().await;
    Ok((counted, rtts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::BaselineServer;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn patterns_differ_per_connection_and_message() {
        let a = pattern(0, 64);
        let b = pattern(1, 64);
        assert_eq!(a.len(), 64 + WINDOWS);
        assert_ne!(a[..64], b[..64]);
        assert_ne!(a[..64], a[1..65]);
    }

    #[test]
    fn measures_an_echo_server_and_counts_only_the_measuring_phase() {
        let server = BaselineServer::start("127.0.0.1:0".parse().unwrap(), 1, 16384, true).unwrap();
        let runtime = runtime();
        let outcome = runtime.block_on(async {
            let mut load = Load::start(server.local_addr(), 4, 70_000).await.unwrap();
            assert!(load.wait_completed(8, Duration::from_secs(10)).await);
            let completed = Arc::clone(&load.completed);
            let warm = load.completed();
            load.start_measuring();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let outcome = load.finish(false).await.unwrap();
            // The warm-up's messages are not counted.
            let total = completed.load(Ordering::Relaxed);
            assert!(outcome.messages > 0 && outcome.messages <= total - warm);
            outcome
        });
        assert_eq!(outcome.bytes, outcome.messages * 70_000);
        assert_eq!(outcome.rtt_ns.len() as u64, outcome.messages);
        assert!(outcome.window >= Duration::from_millis(200));
        assert!(outcome.mib_per_s() > 0.0);
    }

    /// A server that corrupts one byte of every echo.
    async fn corrupting_server(listener: tokio::net::TcpListener) {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buffer = vec![0_u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                return;
            }
            buffer[n / 2] ^= 0x40;
            if stream.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    }

    #[test]
    fn a_wrong_echo_fails_the_run() {
        let runtime = runtime();
        let error = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(corrupting_server(listener));
            let load = Load::start(addr, 1, 64).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            load.finish(true).await.unwrap_err()
        });
        assert!(
            matches!(
                error,
                LoadError::Mismatch {
                    connection: 0,
                    message: 0,
                    offset: 32
                }
            ),
            "{error}"
        );
    }
}
