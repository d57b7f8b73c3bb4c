//! The socket runner's checks of a handler's answers: a range that is empty, leaves the
//! buffer or overlaps the other operation in flight never reaches the provider; the
//! connection closes with an error instead.

extern crate std;

use ::core::ops::Range;

use super::{attach_and_listen, config, finish, lines};
use crate::{
    config::Config,
    handler::{Buffer, ConnectionHandler, Service},
    provider::Completion,
    testing::{
        provider::{Call, Mode, World},
        scenario,
    },
};
use wsk_primitives::{platform::Level, status::NtStatus};

/// Asks once to receive into `R0..R1` and, while it has not sent, to send `S0..S1` (if not
/// empty).
struct Ranges<const R0: usize, const R1: usize, const S0: usize, const S1: usize> {
    asked_receive: bool,
}

impl<const R0: usize, const R1: usize, const S0: usize, const S1: usize> ConnectionHandler
    for Ranges<R0, R1, S0, S1>
{
    fn buffer_size(config: &Config) -> usize {
        config.buffer_size() as usize
    }

    fn new(_config: &Config, _buffer_size: usize) -> Self {
        Self {
            asked_receive: false,
        }
    }

    fn next_receive(&mut self) -> Option<Range<usize>> {
        (!::core::mem::replace(&mut self.asked_receive, true)).then_some(R0..R1)
    }

    fn received(&mut self, _buffer: &mut Buffer<'_>, _n: usize) {}

    fn receive_abandoned(&mut self) {}

    fn peer_finished(&mut self, _buffer: &mut Buffer<'_>) {}

    fn next_send(&mut self) -> Option<Range<usize>> {
        (S0 < S1).then_some(S0..S1)
    }

    fn sent(&mut self, _buffer: &mut Buffer<'_>, _n: usize) {}

    fn send_abandoned(&mut self) {}
}

/// Serves one connection with `H` (512-byte buffer) and returns what the runner logged as
/// an error, after checking the connection was closed with no receive or send beyond
/// `allowed_receive` and the whole contract held.
fn serve_one<H: ConnectionHandler>(allowed_receive: Option<Range<usize>>) -> std::string::String {
    let world = World::new(Mode::Pending);
    let client = scenario::client(&config(&["127.0.0.1:7"], 4, 512), Service::of::<H>());
    attach_and_listen(&world, &client);
    let listener = world.listeners()[0];
    world
        .accept(listener, Some("192.0.2.1:4000".parse().unwrap()))
        .expect("accepted");
    let io = *world.connection_ios().last().unwrap();
    let receive = world.take_on(io, |c| matches!(c, Call::Receive(_)));
    assert_eq!(
        receive.as_ref().map(|op| op.call.clone()),
        allowed_receive.map(Call::Receive)
    );
    assert!(world.take_on(io, |c| matches!(c, Call::Send(_))).is_none());
    let close = world.take_on(io, |c| *c == Call::Close).expect("closed");
    if let Some(receive) = receive {
        world.complete(receive, Completion::Received(Err(NtStatus::CANCELLED)));
    }
    world.succeed(close);
    world.drain();
    let snapshot = client.stats().snapshot();
    assert_eq!((snapshot.failures, snapshot.active), (1, 0));
    let errors = lines(&client, Level::Error).join("\n");
    finish(&world, &client);
    errors
}

#[test]
fn a_receive_range_leaving_the_buffer_closes_the_connection() {
    let errors = serve_one::<Ranges<256, 513, 0, 0>>(None);
    assert!(
        errors.contains("receive range 256..513 leaves the buffer"),
        "{errors}"
    );
}

#[test]
fn an_empty_receive_range_closes_the_connection() {
    let errors = serve_one::<Ranges<3, 3, 0, 0>>(None);
    assert!(errors.contains("receive range 3..3 is empty"), "{errors}");
}

#[test]
fn a_send_range_overlapping_the_receive_closes_the_connection() {
    let errors = serve_one::<Ranges<0, 8, 4, 6>>(Some(0..8));
    assert!(
        errors.contains("send range 4..6 overlaps the operation in flight"),
        "{errors}"
    );
}

#[test]
fn disjoint_ranges_are_both_issued() {
    let world = World::new(Mode::Pending);
    let client = scenario::client(
        &config(&["127.0.0.1:7"], 4, 512),
        Service::of::<Ranges<0, 8, 8, 16>>(),
    );
    attach_and_listen(&world, &client);
    world.accept(world.listeners()[0], None).expect("accepted");
    let io = *world.connection_ios().last().unwrap();
    let receive = world
        .take_on(io, |c| *c == Call::Receive(0..8))
        .expect("receive");
    let send = world
        .take_on(io, |c| *c == Call::Send(8..16))
        .expect("send");
    assert_eq!(client.stats().snapshot().failures, 0);
    world.complete(send, Completion::Sent(Err(NtStatus::CONNECTION_RESET)));
    world.complete(receive, Completion::Received(Err(NtStatus::CANCELLED)));
    world.drain();
    finish(&world, &client);
}

/// A handler whose buffer size is `N` bytes.
struct OfSize<const N: usize>;

impl<const N: usize> ConnectionHandler for OfSize<N> {
    fn buffer_size(_config: &Config) -> usize {
        N
    }

    fn new(_config: &Config, _buffer_size: usize) -> Self {
        Self
    }

    fn next_receive(&mut self) -> Option<Range<usize>> {
        None
    }

    fn received(&mut self, _buffer: &mut Buffer<'_>, _n: usize) {}

    fn receive_abandoned(&mut self) {}

    fn peer_finished(&mut self, _buffer: &mut Buffer<'_>) {}

    fn next_send(&mut self) -> Option<Range<usize>> {
        None
    }

    fn sent(&mut self, _buffer: &mut Buffer<'_>, _n: usize) {}

    fn send_abandoned(&mut self) {}
}

/// Attaches a client serving `H`; returns the attach's status and its error lines.
fn attach_with<H: ConnectionHandler>() -> (NtStatus, std::string::String) {
    let world = World::new(Mode::Pending);
    let client = scenario::client(&config(&["127.0.0.1:7"], 4, 512), Service::of::<H>());
    // SAFETY: the client outlives the binding.
    let status = unsafe { world.attach_1_0(&client) };
    let errors = lines(&client, Level::Error).join("\n");
    if status.is_success() {
        finish(&world, &client);
    } else {
        assert_eq!(client.live_bindings(), 0);
        client.platform().assert_clean();
    }
    (status, errors)
}

#[test]
fn a_service_without_a_valid_buffer_size_fails_the_attach_with_a_clear_error() {
    let (status, errors) = attach_with::<OfSize<0>>();
    assert_eq!(status, NtStatus::INVALID_PARAMETER);
    assert!(
        errors.contains("connection buffer of 0 bytes is not 1..=16777216 bytes"),
        "{errors}"
    );
    let (status, errors) = attach_with::<OfSize<{ (16 << 20) + 1 }>>();
    assert_eq!(status, NtStatus::INVALID_PARAMETER, "{errors}");
    let (status, _) = attach_with::<OfSize<{ 16 << 20 }>>();
    assert_eq!(status, NtStatus::SUCCESS, "the largest buffer is allowed");
}

/// A handler aligned to the pool's 16 bytes (more than the socket needs): checks where it was
/// placed.
#[repr(align(16))]
struct Aligned16 {
    misplaced: bool,
}

impl ConnectionHandler for Aligned16 {
    fn buffer_size(_config: &Config) -> usize {
        64
    }

    fn new(_config: &Config, _buffer_size: usize) -> Self {
        Self { misplaced: false }
    }

    fn next_receive(&mut self) -> Option<Range<usize>> {
        self.misplaced = !::core::ptr::from_mut(self).addr().is_multiple_of(16);
        (!self.misplaced).then_some(0..64)
    }

    fn received(&mut self, _buffer: &mut Buffer<'_>, _n: usize) {}

    fn receive_abandoned(&mut self) {}

    fn peer_finished(&mut self, _buffer: &mut Buffer<'_>) {}

    fn next_send(&mut self) -> Option<Range<usize>> {
        None
    }

    fn sent(&mut self, _buffer: &mut Buffer<'_>, _n: usize) {}

    fn send_abandoned(&mut self) {}
}

#[test]
fn a_handler_with_a_larger_alignment_is_placed_aligned() {
    let world = World::new(Mode::Pending);
    let client = scenario::client(
        &config(&["127.0.0.1:7"], 4, 512),
        Service::of::<Aligned16>(),
    );
    attach_and_listen(&world, &client);
    for _ in 0..3 {
        world.accept(world.listeners()[0], None).expect("accepted");
        let io = *world.connection_ios().last().unwrap();
        let receive = world.take_on(io, |c| *c == Call::Receive(0..64));
        let receive = receive.expect("an aligned handler asks for its receive");
        world.complete(receive, Completion::Received(Err(NtStatus::CANCELLED)));
    }
    world.drain();
    finish(&world, &client);
}
