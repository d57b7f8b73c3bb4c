//! [`Mirror`]: a small connection handler for the client's own tests, so that they do not
//! depend on an application's handler.
//!
//! It sends back every byte it receives, in order, with a receive and a send outstanding at
//! once (full duplex). Received bytes are appended to the buffer and sent from where the last
//! send ended; once everything received has been sent and no receive is outstanding, it starts
//! again at offset 0. A full buffer stops receiving until then (backpressure).

use ::core::ops::Range;

use crate::{
    config::Config,
    handler::{Buffer, ConnectionHandler, Service},
};

/// The service of [`Mirror`], for [`Client::new`](crate::client::Client::new).
pub const MIRROR: Service = Service::of::<Mirror>();

/// One connection's state (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    capacity: usize,
    /// Bytes `0..filled` were received.
    filled: usize,
    /// Bytes `0..sent` of those were sent back.
    sent: usize,
    receiving: bool,
    sending: bool,
}

impl Mirror {
    /// Starts again at offset 0 once everything received was sent and nothing is in flight.
    const fn rewind_if_drained(&mut self) {
        if self.sent == self.filled && !self.receiving && !self.sending {
            self.filled = 0;
            self.sent = 0;
        }
    }
}

/// The buffer is the configuration's `BufferSize`.
impl ConnectionHandler for Mirror {
    fn buffer_size(config: &Config) -> usize {
        usize::try_from(config.buffer_size()).unwrap_or(usize::MAX)
    }

    fn new(_config: &Config, buffer_size: usize) -> Self {
        Self {
            capacity: buffer_size,
            filled: 0,
            sent: 0,
            receiving: false,
            sending: false,
        }
    }

    fn next_receive(&mut self) -> Option<Range<usize>> {
        (!self.receiving && self.filled < self.capacity).then(|| {
            self.receiving = true;
            self.filled..self.capacity
        })
    }

    fn received(&mut self, _buffer: &mut Buffer<'_>, n: usize) {
        debug_assert!(
            n <= self.capacity - self.filled,
            "the runner checks n against the range"
        );
        self.receiving = false;
        self.filled = self.filled.saturating_add(n).min(self.capacity);
    }

    fn receive_abandoned(&mut self) {
        self.receiving = false;
        self.rewind_if_drained();
    }

    fn peer_finished(&mut self, _buffer: &mut Buffer<'_>) {
        self.receive_abandoned();
    }

    fn next_send(&mut self) -> Option<Range<usize>> {
        (!self.sending && self.sent < self.filled).then(|| {
            self.sending = true;
            self.sent..self.filled
        })
    }

    fn sent(&mut self, _buffer: &mut Buffer<'_>, n: usize) {
        debug_assert!(
            n <= self.filled - self.sent,
            "the runner checks n against the range"
        );
        self.sending = false;
        self.sent = self.sent.saturating_add(n).min(self.filled);
        self.rewind_if_drained();
    }

    fn send_abandoned(&mut self) {
        self.sending = false;
    }
}
