//! # wskecho-echo
//!
//! The wskecho sample's echo service: [`EchoRing`], the ring-buffer arithmetic of one
//! connection's buffer, as its [`ConnectionHandler`], and [`ECHO`], the service the driver
//! gives its `Client`.
//!
//! The buffer holds bytes received and not yet sent back: `len` bytes starting at `head`,
//! wrapping at `capacity`. At most one receive (into free space right after the data) and one
//! send (of data from `head`) are outstanding at once; each covers one contiguous range, so a
//! wrapped region takes two operations. Bytes in flight (buffered + being received) never
//! exceed the capacity: when the ring is full no receive is issued (backpressure, TCP's window
//! closes), and it resumes once a send completes.
//!
//! Only arithmetic: the bytes live in the connection's allocation. Every operation is checked;
//! a completion reporting more bytes than asked for is an error, never a panic.
//!
//! A crate of its own, beside the driver crate, so that host programs (the harness's CLI and
//! tests, the bench) can serve it: a std program cannot link the driver crate, whose Windows
//! build carries the kernel's panic handler and global allocator.

#![no_std]

#[cfg(test)]
extern crate std;

use ::core::ops::Range;

use wsk_client::{
    config::Config,
    handler::{Buffer, ConnectionHandler, Service},
};

/// A completion that does not fit the outstanding operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// No operation of that kind is outstanding.
    NotOutstanding,
    /// More bytes reported than were asked for.
    Overrun {
        /// Bytes asked for.
        requested: usize,
        /// Bytes reported.
        reported: usize,
    },
}

/// The ring (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoRing {
    capacity: usize,
    head: usize,
    len: usize,
    receiving: Option<usize>,
    sending: Option<usize>,
}

impl EchoRing {
    /// An empty ring over `capacity` bytes.
    #[must_use]
    pub const fn new(capacity: usize) -> Self {
        Self {
            capacity,
            head: 0,
            len: 0,
            receiving: None,
            sending: None,
        }
    }

    /// Bytes buffered (received, not yet sent).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is buffered.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes in flight: buffered plus the outstanding receive's range.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.len.saturating_add(self.receiving.unwrap_or(0))
    }

    /// Whether a receive is outstanding.
    #[must_use]
    pub const fn is_receiving(&self) -> bool {
        self.receiving.is_some()
    }

    /// Whether a send is outstanding.
    #[must_use]
    pub const fn is_sending(&self) -> bool {
        self.sending.is_some()
    }

    /// First free byte (just after the data).
    const fn tail(&self) -> usize {
        let end = self.head.saturating_add(self.len);
        if end >= self.capacity {
            end.saturating_sub(self.capacity)
        } else {
            end
        }
    }

    /// Starts a receive: the contiguous free range after the data, or `None` if a receive is
    /// outstanding or the ring is full.
    pub fn start_receive(&mut self) -> Option<Range<usize>> {
        if self.receiving.is_some() || self.len >= self.capacity {
            return None;
        }
        if self.len == 0 && self.sending.is_none() {
            self.head = 0; // empty: use the whole buffer in one piece
        }
        let tail = self.tail();
        let end = if tail < self.head {
            self.head
        } else {
            self.capacity
        };
        let range = tail..end;
        if range.is_empty() {
            return None;
        }
        self.receiving = Some(range.len());
        Some(range)
    }

    /// The outstanding receive completed with `received` bytes.
    ///
    /// # Errors
    /// No receive is outstanding, or more bytes were reported than asked for (nothing changes).
    pub fn finish_receive(&mut self, received: usize) -> Result<(), RingError> {
        let requested = self.receiving.ok_or(RingError::NotOutstanding)?;
        if received > requested {
            return Err(RingError::Overrun {
                requested,
                reported: received,
            });
        }
        self.receiving = None;
        self.len = self.len.saturating_add(received);
        Ok(())
    }

    /// Forgets the outstanding receive (it failed; its bytes are not data).
    pub const fn abandon_receive(&mut self) {
        self.receiving = None;
    }

    /// Starts a send: the contiguous data from `head`, or `None` if a send is outstanding or
    /// nothing is buffered.
    pub fn start_send(&mut self) -> Option<Range<usize>> {
        if self.sending.is_some() || self.len == 0 {
            return None;
        }
        let end = self.head.saturating_add(self.len).min(self.capacity);
        let range = self.head..end;
        if range.is_empty() {
            return None;
        }
        self.sending = Some(range.len());
        Some(range)
    }

    /// The outstanding send completed with `sent` bytes.
    ///
    /// # Errors
    /// No send is outstanding, or more bytes were reported than asked for (nothing changes).
    pub fn finish_send(&mut self, sent: usize) -> Result<(), RingError> {
        let requested = self.sending.ok_or(RingError::NotOutstanding)?;
        if sent > requested {
            return Err(RingError::Overrun {
                requested,
                reported: sent,
            });
        }
        self.sending = None;
        self.len = self.len.saturating_sub(sent);
        let head = self.head.saturating_add(sent);
        self.head = if head >= self.capacity {
            head.saturating_sub(self.capacity)
        } else {
            head
        };
        Ok(())
    }

    /// Forgets the outstanding send (it failed).
    pub const fn abandon_send(&mut self) {
        self.sending = None;
    }
}

/// The echo service, for [`Client::new`](wsk_client::client::Client::new).
pub const ECHO: Service = Service::of::<EchoRing>();

/// The echo service: every byte received is sent back, in order, through the ring. The
/// buffer is the configuration's `BufferSize`; the bytes stay where the receive put them.
impl ConnectionHandler for EchoRing {
    fn buffer_size(config: &Config) -> usize {
        usize::try_from(config.buffer_size()).unwrap_or(usize::MAX)
    }

    fn new(_config: &Config, buffer_size: usize) -> Self {
        Self::new(buffer_size)
    }

    fn next_receive(&mut self) -> Option<Range<usize>> {
        self.start_receive()
    }

    fn received(&mut self, _buffer: &mut Buffer<'_>, n: usize) {
        // The runner checked `n` against the range; should the ring disagree, the bytes are
        // dropped rather than echoed wrongly.
        if self.finish_receive(n).is_err() {
            self.abandon_receive();
        }
    }

    fn receive_abandoned(&mut self) {
        self.abandon_receive();
    }

    fn peer_finished(&mut self, _buffer: &mut Buffer<'_>) {
        self.abandon_receive();
    }

    fn next_send(&mut self) -> Option<Range<usize>> {
        self.start_send()
    }

    fn sent(&mut self, _buffer: &mut Buffer<'_>, n: usize) {
        // As in `received`.
        if self.finish_send(n).is_err() {
            self.abandon_send();
        }
    }

    fn send_abandoned(&mut self) {
        self.abandon_send();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{EchoRing, RingError};

    #[test]
    fn receive_then_send_everything() {
        let mut r = EchoRing::new(8);
        assert_eq!(r.start_receive(), Some(0..8));
        assert_eq!(r.start_receive(), None, "one receive at a time");
        r.finish_receive(5).unwrap();
        assert_eq!(r.len(), 5);
        assert_eq!(r.start_send(), Some(0..5));
        assert_eq!(
            r.start_receive(),
            Some(5..8),
            "receive into the rest while sending"
        );
        assert_eq!(r.in_flight(), 8);
        r.finish_send(5).unwrap();
        r.finish_receive(3).unwrap();
        assert_eq!(r.start_send(), Some(5..8));
        r.finish_send(3).unwrap();
        assert!(r.is_empty());
        assert_eq!(r.start_receive(), Some(0..8), "empty ring restarts at 0");
    }

    #[test]
    fn wraparound_takes_two_operations() {
        let mut r = EchoRing::new(8);
        assert_eq!(r.start_receive(), Some(0..8));
        r.finish_receive(6).unwrap();
        assert_eq!(r.start_send(), Some(0..6));
        r.finish_send(4).unwrap(); // partial send: head 4, len 2
        assert_eq!(r.start_receive(), Some(6..8));
        r.finish_receive(2).unwrap(); // data 4..8, len 4
        assert_eq!(r.start_receive(), Some(0..4), "wrapped free space");
        r.finish_receive(3).unwrap(); // data 4..8 + 0..3, len 7
        assert_eq!(r.len(), 7);
        assert_eq!(r.start_send(), Some(4..8), "first piece up to the end");
        r.finish_send(4).unwrap();
        assert_eq!(r.start_send(), Some(0..3), "then the wrapped piece");
        assert_eq!(r.start_receive(), Some(3..8));
        r.finish_send(3).unwrap();
        r.finish_receive(0).unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn full_ring_stops_receiving_until_a_send_completes() {
        let mut r = EchoRing::new(4);
        assert_eq!(r.start_receive(), Some(0..4));
        r.finish_receive(4).unwrap();
        assert_eq!(r.start_receive(), None, "backpressure");
        assert_eq!(r.start_send(), Some(0..4));
        assert_eq!(
            r.start_receive(),
            None,
            "still full while the send is outstanding"
        );
        r.finish_send(1).unwrap();
        assert_eq!(r.start_receive(), Some(0..1));
        assert!(r.in_flight() <= 4);
    }

    #[test]
    fn in_flight_never_exceeds_capacity() {
        // Drive the ring with a deterministic pseudo-random schedule.
        let mut r = EchoRing::new(7);
        let mut seed = 12345_u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as usize
        };
        let (mut received, mut sent) = (0_usize, 0_usize);
        let mut receiving: Option<core::ops::Range<usize>> = None;
        let mut sending: Option<core::ops::Range<usize>> = None;
        for _ in 0..10_000 {
            if receiving.is_none() {
                receiving = r.start_receive();
            }
            if sending.is_none() {
                sending = r.start_send();
            }
            if let (Some(a), Some(b)) = (&receiving, &sending) {
                assert!(
                    a.end <= b.start || b.end <= a.start,
                    "receive {a:?} overlaps send {b:?}"
                );
            }
            assert!(r.in_flight() <= 7);
            if next() % 2 == 0 {
                if let Some(range) = receiving.take() {
                    let n = next() % (range.len() + 1);
                    r.finish_receive(n).unwrap();
                    received += n;
                }
            } else if let Some(range) = sending.take() {
                let n = next() % (range.len() + 1);
                r.finish_send(n).unwrap();
                sent += n;
            }
            assert_eq!(received - sent, r.len());
        }
        assert!(sent > 1000, "the schedule made progress");
    }

    #[test]
    fn overruns_are_errors_and_change_nothing() {
        let mut r = EchoRing::new(4);
        assert_eq!(r.finish_receive(1), Err(RingError::NotOutstanding));
        assert_eq!(r.finish_send(0), Err(RingError::NotOutstanding));
        assert_eq!(r.start_receive(), Some(0..4));
        assert_eq!(
            r.finish_receive(5),
            Err(RingError::Overrun {
                requested: 4,
                reported: 5
            })
        );
        assert!(r.is_receiving());
        r.finish_receive(2).unwrap();
        assert_eq!(r.start_send(), Some(0..2));
        assert_eq!(
            r.finish_send(usize::MAX),
            Err(RingError::Overrun {
                requested: 2,
                reported: usize::MAX
            })
        );
        assert_eq!(r.len(), 2);
        r.abandon_send();
        assert!(!r.is_sending());
    }

    /// The ring served by the client, against the recording test double of `wsk-client`.
    mod served {
        use wsk_client::{
            provider::Completion,
            testing::{
                provider::Call,
                scenario::{self, attached, config, connect, finish, take_receive, take_send},
            },
        };
        use wsk_primitives::status::NtStatus;

        use crate::ECHO;

        #[test]
        fn bytes_come_back_in_order_across_wraparound_with_partial_sends() {
            scenario::assert_sends_back_what_it_receives(ECHO);
        }

        #[test]
        fn full_ring_stops_receiving_until_a_send_frees_room() {
            // SAFETY: `finish` runs before the client is dropped.
            let (world, client) = unsafe { attached(&config(&["127.0.0.1:7"], 4, 512), ECHO) };
            let io = connect(&world);
            let receive = take_receive(&world, io).expect("first receive");
            assert_eq!(world.deliver(receive, &[1; 512]), 512);
            assert!(
                take_receive(&world, io).is_none(),
                "ring full: no receive (backpressure)"
            );
            let send = take_send(&world, io).expect("echo the full buffer");
            assert_eq!(send.call, Call::Send(0..512));
            world.complete(send, Completion::Sent(Ok(100)));
            let receive = take_receive(&world, io).expect("room again");
            assert_eq!(
                receive.call,
                Call::Receive(0..100),
                "only the freed bytes: in flight stays <= BufferSize"
            );
            let send = take_send(&world, io).expect("rest of the data");
            assert_eq!(send.call, Call::Send(100..512));
            world.succeed(send);
            assert_eq!(client.stats().snapshot().bytes_sent, 512);
            world.complete(receive, Completion::Received(Err(NtStatus::CANCELLED)));
            world.drain();
            finish(&world, &client);
        }
    }
}
