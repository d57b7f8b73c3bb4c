//! The test WSK calling the client: completions, accept events, and the wind-down of sockets
//! being closed. Any thread may call these (a loom model's WSK threads do).

use ::core::net::SocketAddr;
use std::{format, sync::Arc, vec::Vec};

use wsk_primitives::{status::NtStatus, sync::Ordering};

use super::{Call, Entry, Op, State, TestProvider, TestSocket, World, violated};
use crate::{
    provider::{Completion, SocketKind},
    socket::SocketRef,
};

impl World {
    /// A new socket handle, as WSK creates one for an incoming connection.
    pub fn new_socket(&self) -> TestSocket {
        let mut s = self.state();
        s.next_socket += 1;
        TestSocket(s.next_socket)
    }

    /// Pending operations.
    #[must_use]
    pub fn pending(&self) -> Vec<Op> {
        self.state().pending.clone()
    }

    /// Number of pending operations.
    #[must_use]
    pub fn pending_count(&self) -> usize {
        self.state().pending.len()
    }

    /// Takes the first pending operation `filter` accepts.
    pub fn take(&self, filter: impl Fn(&Op) -> bool) -> Option<Op> {
        self.take_with(|_, op| filter(op))
    }

    /// Takes the pending operation on I/O `io` whose call `matches`.
    pub fn take_on(&self, io: usize, matches: impl Fn(&Call) -> bool) -> Option<Op> {
        self.take(|op| op.io == io && matches(&op.call))
    }

    /// [`World::take`] with a filter that also sees the socket records.
    fn take_with(&self, filter: impl Fn(&State, &Op) -> bool) -> Option<Op> {
        let mut s = self.state();
        let index = s.pending.iter().position(|op| filter(&s, op))?;
        Some(s.pending.remove(index))
    }

    /// Completes `op` (taken from the pending list) with `completion`, as WSK completes an IRP:
    /// the completion routine runs on this thread.
    pub fn complete(&self, op: Op, completion: Completion<TestSocket>) {
        if let Some(irp) = self.irps.get(op.irp()) {
            irp.fetch_add(1, Ordering::Acquire);
        }
        {
            let mut s = self.state();
            let Some(record) = s.ios.get_mut(op.io) else {
                return;
            };
            if record.dropped {
                Self::violation(
                    &mut s,
                    format!("{:?} completed after its socket was freed", op.call),
                );
                return;
            }
            if let Some(i) = record.outstanding.iter().position(|k| *k == op.call.kind()) {
                record.outstanding.swap_remove(i);
            }
            if op.call == Call::Close {
                record.closed = true;
            }
            if matches!(completion, Completion::Bound(Ok(()))) {
                record.bound = true;
            }
            match (&op.call, completion) {
                (Call::SetIpv6Only, Completion::OptionSet(Ok(()))) => record.ipv6_only = true,
                (Call::SetNoDelay, Completion::OptionSet(Ok(()))) => record.no_delay = true,
                _ => {}
            }
        }
        // SAFETY: the operation's token, completed once.
        self.callback(|| self.enter_client(&mut || unsafe { op.token.complete(completion) }));
    }

    /// Completes `op` successfully: a new socket for Open, full sends, nothing received (use
    /// [`World::deliver`] for data).
    pub fn succeed(&self, op: Op) {
        let completion = match &op.call {
            Call::Open(_) => Completion::Created(Ok(self.new_socket())),
            Call::SetIpv6Only | Call::SetNoDelay => Completion::OptionSet(Ok(())),
            Call::Bind(_) => Completion::Bound(Ok(())),
            Call::Receive(_) => Completion::Received(Ok(0)),
            Call::Send(range) => Completion::Sent(Ok(range.len())),
            Call::Disconnect => Completion::Disconnected(Ok(())),
            Call::Close => Completion::Closed,
        };
        self.complete(op, completion);
    }

    /// Completes receive `op` with `data` written into the connection's buffer. Returns how
    /// many bytes fit (the rest is not delivered).
    pub fn deliver(&self, op: Op, data: &[u8]) -> usize {
        let Call::Receive(range) = op.call.clone() else {
            panic!("not a receive: {op:?}")
        };
        let n = data.len().min(range.len());
        let buffer = self.state().ios.get(op.io).and_then(|r| r.buffer);
        let (addr, len) = buffer.expect("connection buffer");
        assert!(range.end <= len);
        // SAFETY: the range is inside the buffer the client handed out.
        let dst = unsafe { (addr as *mut u8).add(range.start) };
        // SAFETY: `n <= range.len()` bytes, owned by this receive until it completes.
        unsafe { ::core::ptr::copy_nonoverlapping(data.as_ptr(), dst, n) };
        self.complete(op, Completion::Received(Ok(n)));
        n
    }

    /// The bytes a send operation covers (what WSK would transmit).
    #[must_use]
    pub fn send_bytes(&self, op: &Op, n: usize) -> Vec<u8> {
        let Call::Send(range) = op.call.clone() else {
            panic!("not a send: {op:?}")
        };
        let (addr, len) = self
            .state()
            .ios
            .get(op.io)
            .and_then(|r| r.buffer)
            .expect("connection buffer");
        assert!(range.end <= len);
        let n = n.min(range.len());
        // SAFETY: the range is inside the buffer the client handed out.
        let src = unsafe { (addr as *const u8).add(range.start) };
        // SAFETY: `n <= range.len()` bytes, owned by this send until it completes.
        unsafe { ::core::slice::from_raw_parts(src, n) }.to_vec()
    }

    // ---- accept events ----

    /// Delivers an accept event with a new connection from `remote` to `listener`.
    pub fn accept(
        &self,
        listener: SocketRef<TestProvider>,
        remote: Option<SocketAddr>,
    ) -> Result<SocketRef<TestProvider>, NtStatus> {
        let socket = self.new_socket();
        self.accept_with(listener, Some(socket), remote)
    }

    /// Delivers an accept event (`socket` `None`: the listener stopped working).
    pub fn accept_with(
        &self,
        listener: SocketRef<TestProvider>,
        socket: Option<TestSocket>,
        remote: Option<SocketAddr>,
    ) -> Result<SocketRef<TestProvider>, NtStatus> {
        let io = {
            let mut s = self.state();
            let io = s
                .ios
                .iter()
                .position(|r| !r.dropped && r.token == Some(listener));
            if let Some(record) = io.map(|io| &mut s.ios[io]) {
                record.callbacks += 1;
                if record.closed {
                    Self::violation(
                        &mut s,
                        "accept event after the listener's close completed".into(),
                    );
                }
            }
            io
        };
        self.accept_event(listener, io, socket, remote)
    }

    /// Delivers an accept event for a new connection from `remote` to the listener of I/O
    /// `listener`, only while the listener's close has not completed (`None` otherwise). While
    /// it runs, the listener's close does not complete ([`World::wind_down_one`]). Returns the
    /// new connection's I/O id, or the status the client refused it with.
    pub fn accept_on(
        &self,
        listener: usize,
        remote: Option<SocketAddr>,
    ) -> Option<Result<usize, NtStatus>> {
        let (token, socket, first_new) = {
            let mut s = self.state();
            let record = s.ios.get_mut(listener)?;
            if record.closed {
                return None;
            }
            let token = record.token?;
            record.callbacks += 1;
            s.next_socket += 1;
            (token, TestSocket(s.next_socket), s.ios.len())
        };
        let result = self.accept_event(token, Some(listener), Some(socket), remote);
        let new_ios: Vec<usize> = {
            let s = self.state();
            let new = s.ios.iter().enumerate().skip(first_new);
            new.filter(|(_, r)| r.kind == SocketKind::Connection)
                .map(|(i, _)| i)
                .collect()
        };
        match (result, new_ios.as_slice()) {
            (Ok(_), [io]) => Some(Ok(*io)),
            (Ok(_), _) => violated(&format!(
                "accept took a connection with {} new socket I/Os",
                new_ios.len()
            )),
            (Err(status), _) => Some(Err(status)),
        }
    }

    /// The accept event on the listener of I/O `io` (its `callbacks` counted by the caller),
    /// as the kernel's `WskAcceptEvent` runs: the client decides, the out-parameters are
    /// written (here: `accepting` cleared), then the connection starts.
    fn accept_event(
        &self,
        listener: SocketRef<TestProvider>,
        io: Option<usize>,
        socket: Option<TestSocket>,
        remote: Option<SocketAddr>,
    ) -> Result<SocketRef<TestProvider>, NtStatus> {
        {
            let mut s = self.state();
            s.calls.push(Entry::AcceptEvent(socket));
            s.accepting = socket;
        }
        let result = self.callback(|| {
            // SAFETY: a listener token whose close has not completed (the caller checked; it
            // cannot complete while this callback runs).
            let result = self.enter_client_for(|| unsafe { listener.accept_event(socket, remote) });
            self.state().accepting = None;
            result.map(|accepted| {
                let token = accepted.token();
                let mut accepted = Some(accepted);
                self.enter_client(&mut || {
                    if let Some(accepted) = accepted.take() {
                        accepted.start();
                    }
                });
                token
            })
        });
        let listener_closing = {
            let mut s = self.state();
            let record = io.and_then(|io| s.ios.get_mut(io));
            record.is_some_and(|r| {
                r.callbacks -= 1;
                r.close_issued
            })
        };
        if listener_closing {
            // The listener's close may complete now (never notify under the state lock).
            self.wsk_work.notify();
        }
        let mut s = self.state();
        match (&result, socket) {
            (Ok(_), Some(socket)) => {
                s.facts.insert("accept event: connection admitted");
                s.accepted.push(socket);
            }
            _ => {
                s.facts.insert("accept event: connection refused");
            }
        }
        result
    }

    // ---- sockets winding down ----

    /// Completes one operation on a socket whose close was issued, the way WSK winds such a
    /// socket down: its other operations complete with `STATUS_CANCELLED`, then the close
    /// (once no accept event runs on the socket). Returns whether it completed one.
    pub fn wind_down_one(&self) -> bool {
        let closing = |s: &State, op: &Op| s.ios.get(op.io).is_some_and(|r| r.close_issued);
        let op = self
            .take_with(|s, op| op.call != Call::Close && closing(s, op))
            .or_else(|| {
                self.take_with(|s, op| {
                    op.call == Call::Close && s.ios.get(op.io).is_some_and(|r| r.callbacks == 0)
                })
            });
        let Some(op) = op else {
            let mut s = self.state();
            let waiting = s.pending.iter().any(|op| {
                op.call == Call::Close && s.ios.get(op.io).is_some_and(|r| r.callbacks > 0)
            });
            if waiting {
                s.facts
                    .insert("a close waited for an accept event on its socket");
            }
            return false;
        };
        let completion = op.call.cancelled();
        self.complete(op, completion);
        true
    }

    /// Completes everything pending as WSK does once sockets are closed: sockets being closed
    /// wind down as in [`World::wind_down_one`]; any other operation fails with
    /// `STATUS_CONNECTION_ABORTED`. Returns the number completed; fails if operations keep
    /// coming (the client reissuing I/O after the detach).
    pub fn drain(&self) -> usize {
        // A loom model's client issues a handful of operations; a unit test's, thousands.
        let limit = if cfg!(loom) { 64 } else { 10_000 };
        for done in 0..limit {
            if self.wind_down_one() {
                continue;
            }
            let Some(op) = self.take(|_| true) else {
                return done;
            };
            let completion = op.call.failed(NtStatus::CONNECTION_ABORTED);
            self.complete(op, completion);
        }
        violated("operations keep coming during the drain");
    }

    /// A model's WSK thread: completes the operations of sockets being closed (cancelled ones,
    /// then the close) as soon as there are any, and with [`World::complete_setup`] listener
    /// setup too, until the client's detach is complete.
    pub fn serve_until_detached(self: &Arc<Self>) {
        while !self.detached() {
            if self.wind_down_one() {
                continue;
            }
            let setup = self.completes_setup();
            match self.take(|op| setup && matches!(op.call, Call::Open(_) | Call::Bind(_))) {
                Some(op) => self.succeed(op),
                // Woken by a close (or, with `complete_setup`, a setup call) being issued, an
                // accept event on a closing listener returning, or the detach completing.
                None => self.wsk_work.wait(),
            }
        }
    }
}
