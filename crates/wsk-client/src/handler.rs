//! The application's side of a connection: [`ConnectionHandler`], and [`Service`], which
//! tells the socket runner how to make one for each accepted connection.
//!
//! The socket runner (`socket.rs`) owns everything WSK asks of a connection: one outstanding
//! operation of each kind, the close protocol, `IdleTimeout`, the detach. The handler owns
//! the bytes. Each connection has one buffer (its size is the handler's choice, from the
//! configuration) in the connection's own pool allocation, with the handler's state. The
//! runner asks the handler which range of the buffer the next receive may fill and which
//! range the next send transmits, tells it what completed, and checks every answer: a range
//! outside the buffer, empty, or overlapping the other outstanding operation's range closes
//! the connection with an error instead of reaching WSK.
//!
//! A connection ends gracefully when the peer has finished sending (FIN), nothing is
//! outstanding and the handler has nothing more to send: the runner then calls
//! `WskDisconnect` and closes the socket. It ends abortively on an error, a reset,
//! `IdleTimeout` or a detach.
//!
//! Every `&mut self` method runs on the connection's runner, one at a time (it never races),
//! in the socket's scheduled run (kernel: its work item, at `PASSIVE_LEVEL`). `buffer_size`
//! and `new` run when the connection is accepted, inside `WskAcceptEvent`, and the handler's
//! `Drop` wherever the connection's last reference goes (a completion, a detach): both at
//! IRQL <= `DISPATCH_LEVEL`. So a handler must not block, allocate from a global allocator or
//! panic, and its state should stay small (it is built on the accept path's stack): bulk data
//! belongs in the buffer.
//!
//! Every `Some` range from `next_receive` gets exactly one answer: `received`,
//! `peer_finished` or `receive_abandoned`; every one from `next_send` exactly one of `sent`
//! or `send_abandoned`. A handler that answers `None` to both while nothing is outstanding
//! makes no progress until a close (a detach, or `IdleTimeout` if configured): the runner asks
//! again only after a completion.

use ::core::{
    alloc::Layout,
    mem::{align_of, size_of},
    ops::Range,
    ptr::NonNull,
};

use crate::config::Config;

/// One connection's application logic (see the module documentation).
pub trait ConnectionHandler: Send + 'static {
    /// Bytes of buffer each connection gets, from the configuration: 1 to
    /// [`MAX_CONNECTION_BUFFER`]. Another size makes `ClientAttachProvider` fail with
    /// `STATUS_INVALID_PARAMETER` and an error line naming it.
    fn buffer_size(config: &Config) -> usize
    where
        Self: Sized;

    /// The state of a new connection whose buffer has `buffer_size` bytes, all zero.
    fn new(config: &Config, buffer_size: usize) -> Self
    where
        Self: Sized;

    /// The range of the buffer the next receive may fill, or `None` for no receive now
    /// (backpressure: the runner asks again after each completion of this connection). Called
    /// only while no receive is outstanding and the peer has not finished sending.
    fn next_receive(&mut self) -> Option<Range<usize>>;

    /// The receive into the last range from [`next_receive`](Self::next_receive) delivered
    /// `n` bytes at its start (`1 <= n <= range.len()`, checked by the runner). `buffer` gives
    /// access to the buffer outside the range of the send in flight, if any (so also in
    /// [`peer_finished`](Self::peer_finished) and [`sent`](Self::sent), outside the receive's).
    fn received(&mut self, buffer: &mut Buffer<'_>, n: usize);

    /// The receive of the last range from [`next_receive`](Self::next_receive) ended without
    /// data: it failed, was cancelled by a close, or was never made (the range was refused, or
    /// the binding is detaching).
    fn receive_abandoned(&mut self);

    /// The peer finished sending (FIN): the outstanding receive ended without data, and no
    /// receive is made again.
    fn peer_finished(&mut self, buffer: &mut Buffer<'_>);

    /// The range of the buffer the next send transmits, or `None` for nothing to send now.
    /// Called only while no send is outstanding.
    fn next_send(&mut self) -> Option<Range<usize>>;

    /// The send of the last range from [`next_send`](Self::next_send) transmitted its first
    /// `n` bytes (`1 <= n <= range.len()`, checked by the runner).
    fn sent(&mut self, buffer: &mut Buffer<'_>, n: usize);

    /// The send of the last range from [`next_send`](Self::next_send) failed, was cancelled by
    /// a close, or was never made (as for [`receive_abandoned`](Self::receive_abandoned)).
    fn send_abandoned(&mut self);
}

/// Largest buffer a connection may have (a `WSK_BUF` length is a `SIZE_T`, but an MDL
/// describes at most 4 GiB - 1 page; 16 MiB keeps a connection's allocation sane).
pub const MAX_CONNECTION_BUFFER: usize = 16 << 20;

/// The connection's buffer, as a [`ConnectionHandler`] may touch it: everything except the
/// range a send in flight is reading (the provider reads it at the same time).
#[derive(Debug)]
pub struct Buffer<'a> {
    bytes: NonNull<u8>,
    len: usize,
    in_flight: Option<Range<usize>>,
    _borrow: ::core::marker::PhantomData<&'a mut [u8]>,
}

impl Buffer<'_> {
    /// A view of `len` bytes at `bytes`, with `in_flight` off limits.
    ///
    /// # Safety
    /// `bytes..bytes + len` is valid for reads and writes for the view's lifetime, and
    /// nothing else touches it then except the provider, inside `in_flight` only.
    pub(crate) const unsafe fn new(
        bytes: NonNull<u8>,
        len: usize,
        in_flight: Option<Range<usize>>,
    ) -> Self {
        Self {
            bytes,
            len,
            in_flight,
            _borrow: ::core::marker::PhantomData,
        }
    }

    /// The buffer's size.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no bytes.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of `range`, or `None` if it leaves the buffer or overlaps the send in flight.
    #[must_use]
    pub fn get_mut(&mut self, range: Range<usize>) -> Option<&mut [u8]> {
        if range.start > range.end {
            return None;
        }
        if range.end > self.len {
            return None;
        }
        if let Some(busy) = &self.in_flight
            && overlaps(busy, &range)
        {
            return None;
        }
        // SAFETY: `range.start <= self.len` (checked): inside the buffer or one past its end.
        let start = unsafe { self.bytes.add(range.start) };
        // SAFETY: inside the buffer (checked), outside the range the provider reads (checked),
        // and the view is borrowed mutably for the slice's lifetime: no other reference exists.
        Some(unsafe { ::core::slice::from_raw_parts_mut(start.as_ptr(), range.len()) })
    }
}

/// Whether two ranges share a byte (empty ranges share none).
pub(crate) const fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end && a.start < a.end && b.start < b.end
}

/// How the socket runner makes a [`ConnectionHandler`] for each accepted connection.
///
/// The handler type, erased (a table of functions), so that the client, its bindings and
/// sockets stay generic over the provider only. `Service::of::<MyHandler>()` is a constant.
#[derive(Clone, Copy, Debug)]
pub struct Service {
    state: Layout,
    buffer_size: fn(&Config) -> usize,
    init: unsafe fn(NonNull<u8>, &Config, usize) -> NonNull<dyn ConnectionHandler>,
}

impl Service {
    /// The service of handler type `H`. Fails to compile if `H` needs an alignment above the
    /// pool's (16 bytes).
    #[must_use]
    pub const fn of<H: ConnectionHandler>() -> Self {
        const {
            assert!(
                align_of::<H>() <= wsk_primitives::pool::POOL_ALIGNMENT,
                "a connection handler's alignment must not exceed the pool's"
            );
        }
        Self {
            // SAFETY: the size and alignment of a type form a valid layout.
            state: unsafe { Layout::from_size_align_unchecked(size_of::<H>(), align_of::<H>()) },
            buffer_size: H::buffer_size,
            init: init::<H>,
        }
    }

    /// The buffer size the handler asks for with `config`.
    pub(crate) fn buffer_size(&self, config: &Config) -> usize {
        (self.buffer_size)(config)
    }

    /// Bytes a connection needs after its socket state: room to align the handler's state,
    /// the state, then the buffer. `None` on overflow or a buffer size not between 1 and
    /// [`MAX_CONNECTION_BUFFER`].
    pub(crate) fn tail_size(&self, config: &Config) -> Option<(usize, usize)> {
        let buffer = self.buffer_size(config);
        if buffer == 0 || buffer > MAX_CONNECTION_BUFFER {
            return None;
        }
        let tail = (self.state.align() - 1)
            .checked_add(self.state.size())?
            .checked_add(buffer)?;
        Some((tail, buffer))
    }

    /// Writes a new handler into `tail` (from [`Service::tail_size`]) and returns it and the
    /// buffer that follows it.
    ///
    /// # Safety
    /// `tail` is valid, unused memory of the size [`Service::tail_size`] returned with the same
    /// `config`, `buffer` its second value; the handler is dropped in place before the memory
    /// is freed.
    pub(crate) unsafe fn make(
        &self,
        tail: NonNull<[u8]>,
        config: &Config,
        buffer: usize,
    ) -> (NonNull<dyn ConnectionHandler>, NonNull<[u8]>) {
        let start = tail.cast::<u8>();
        // Bytes up to the next multiple of the (power of two) alignment: `pad < align`.
        let pad = start.as_ptr().addr().wrapping_neg() & (self.state.align() - 1);
        // SAFETY: `pad < align` and the tail has `align - 1 + size + buffer` bytes: in bounds.
        let state = unsafe { start.add(pad) };
        // SAFETY: aligned, `size` bytes inside the tail, unused (caller).
        let handler = unsafe { (self.init)(state, config, buffer) };
        // SAFETY: in bounds, as above: `buffer` bytes follow the state inside the tail.
        let bytes = unsafe { state.add(self.state.size()) };
        (handler, NonNull::slice_from_raw_parts(bytes, buffer))
    }
}

/// [`Service::of`]'s constructor for `H`.
///
/// # Safety
/// `at` is aligned for `H`, valid for writes of `size_of::<H>()` bytes, and unused.
unsafe fn init<H: ConnectionHandler>(
    at: NonNull<u8>,
    config: &Config,
    buffer: usize,
) -> NonNull<dyn ConnectionHandler> {
    let at = at.cast::<H>();
    // SAFETY: per the caller.
    unsafe { at.write(H::new(config, buffer)) };
    at
}

#[cfg(test)]
mod tests {
    use super::{Buffer, overlaps};

    #[test]
    fn overlap_needs_a_shared_byte() {
        assert!(overlaps(&(0..4), &(3..5)));
        assert!(!overlaps(&(0..4), &(4..8)));
        assert!(!overlaps(&(2..2), &(0..8)));
    }

    #[test]
    fn buffer_refuses_the_range_in_flight_and_outside() {
        let mut bytes = [0_u8; 8];
        let ptr = ::core::ptr::NonNull::from(&mut bytes).cast::<u8>();
        {
            // SAFETY: `bytes` outlives the view, and nothing else touches it meanwhile.
            let mut view = unsafe { Buffer::new(ptr, 8, Some(2..4)) };
            assert!(view.get_mut(3..5).is_none());
            assert!(view.get_mut(6..9).is_none());
            let (start, end) = (5, 4);
            assert!(view.get_mut(start..end).is_none());
            view.get_mut(4..8).expect("outside the send").fill(7);
            assert_eq!(view.get_mut(0..2).map(|b| b.len()), Some(2));
        }
        assert_eq!(bytes, [0, 0, 0, 0, 7, 7, 7, 7]);
    }
}
