//! The baseline of the throughput part: a minimal TCP echo server on tokio, on its own runtime.
//!
//! Each connection is one task reading into a buffer of the driver's `BufferSize` and writing
//! what it read back, so it does the same work per byte as the driver minus everything the
//! driver and the emulated WSK add (completions, serializers, the ring buffer, the emulator's
//! reactor and worker hand-offs). `nodelay` sets `TCP_NODELAY` on accepted connections, as
//! the driver does with `NoDelay` = 1, so both servers use the host's TCP stack alike.

use std::{io, net::SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    runtime::Runtime,
};

/// A running baseline echo server. Dropping it stops it (open connections are dropped).
pub struct BaselineServer {
    runtime: Option<Runtime>,
    local: SocketAddr,
}

impl BaselineServer {
    /// Starts listening on `addr` (port 0: ephemeral) with `workers` runtime threads, echoing
    /// through a buffer of `buffer_size` bytes per connection.
    ///
    /// # Errors
    /// The runtime or the listener could not be created.
    pub fn start(
        addr: SocketAddr,
        workers: usize,
        buffer_size: usize,
        nodelay: bool,
    ) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("baseline-echo")
            .enable_io()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind(addr))?;
        let local = listener.local_addr()?;
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                if nodelay {
                    let _ = stream.set_nodelay(true);
                }
                tokio::spawn(echo(stream, buffer_size));
            }
        });
        Ok(Self {
            runtime: Some(runtime),
            local,
        })
    }

    /// The address it listens on.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for BaselineServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Echoes until the peer's FIN (then shuts down the sending side) or an error.
async fn echo(mut stream: TcpStream, buffer_size: usize) {
    let mut buffer = vec![0_u8; buffer_size.max(1)];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => {
                let _ = stream.shutdown().await;
                return;
            }
            Ok(n) => {
                let Some(read) = buffer.get(..n) else { return };
                if stream.write_all(read).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}
