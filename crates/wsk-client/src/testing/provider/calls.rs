//! The client calling into the test WSK: [`TestProvider`] and the per-socket [`TestIo`].

use ::core::{net::SocketAddr, ops::Range, ptr::NonNull};
use std::{format, sync::Arc, vec::Vec};

use wsk_primitives::{
    status::NtStatus,
    sync::Ordering,
    testing::sync::{Causality, current_thread},
};

use super::{Call, Entry, IoRecord, Mode, Op, TestSocket, World};
use crate::{
    binding::BindingRef,
    provider::{Provider, SocketKind, SocketOption},
    socket::SocketRef,
    testing::TestPlatform,
};

/// Per-socket I/O resources of the test WSK.
#[derive(Debug)]
pub struct TestIo {
    id: usize,
    world: Arc<World>,
    /// Written by every call on the socket (entry and return) and by the free.
    cell: Causality,
}

impl Drop for TestIo {
    #[inline(never)]
    fn drop(&mut self) {
        self.cell.write();
        let mut s = self.world.state();
        let queued = s.scheduled.iter().any(|(_, io, _)| *io == self.id);
        let Some(record) = s.ios.get_mut(self.id) else {
            return;
        };
        let problem = if record.dropped {
            Some("socket I/O dropped twice".into())
        } else if !record.outstanding.is_empty() {
            Some(format!(
                "socket I/O dropped with {:?} outstanding",
                record.outstanding
            ))
        } else if record.executing {
            Some("socket I/O dropped while a call on it is executing".into())
        } else if queued {
            Some("socket I/O dropped while its work item is queued".into())
        } else if record.socket.is_some() && !record.closed {
            Some("socket I/O dropped before the socket's close completed".into())
        } else {
            None
        };
        record.dropped = true;
        if let Some(p) = problem {
            World::violation(&mut s, p);
        }
    }
}

/// The provider of one test binding.
#[derive(Debug)]
pub struct TestProvider {
    pub(super) world: Arc<World>,
}

impl Drop for TestProvider {
    #[inline(never)]
    fn drop(&mut self) {
        // The provider lives in the binding: freeing it must come after every call returned.
        self.world.calls_returned.write();
        self.world.state().providers_dropped += 1;
    }
}

impl World {
    /// A call starts executing: checks the calling context and the socket's state.
    fn enter(&self, io: Option<usize>, call: Entry) {
        let me = current_thread();
        let mut s = self.state();
        let mut problems = Vec::new();
        if s.in_callback(me) {
            problems.push(format!(
                "{call} inside a completion routine or accept event"
            ));
        }
        if s.detach_complete() {
            problems.push(format!("{call} after the detach completed"));
        }
        s.executing += 1;
        if let Some(record) = io.and_then(|io| s.ios.get_mut(io)) {
            if record.executing {
                problems.push(format!(
                    "{call} while another call on the socket is executing"
                ));
            }
            if record.closed {
                problems.push(format!("{call} on a socket whose close completed"));
            } else if record.close_issued {
                problems.push(format!("{call} on a socket being closed"));
            }
            record.executing = true;
        }
        s.calls.push(call);
        for p in problems {
            Self::violation(&mut s, p);
        }
        drop(s);
        self.in_call.fetch_add(1, Ordering::Relaxed);
    }

    /// The call returns.
    fn leave(&self, io: Option<usize>) {
        self.in_call.fetch_sub(1, Ordering::Relaxed);
        {
            let mut s = self.state();
            s.executing -= 1;
            if let Some(record) = io.and_then(|io| s.ios.get_mut(io)) {
                record.executing = false;
            }
        }
        self.calls_returned.read();
    }

    /// Records the operation as pending (checking it against the socket); returns it if it
    /// completes inline, and whether a model's WSK thread has work.
    fn issue(&self, op: Op) -> (Option<Op>, bool) {
        let mut s = self.state();
        let mode = s.mode;
        let completes_setup = s.completes_setup;
        let call = op.call.clone();
        let mut problems = Vec::new();
        if op.socket.is_some() && s.accepting == op.socket {
            problems.push(format!(
                "{call:?} on the accepted socket before its accept event wrote the out-parameters"
            ));
        }
        let Some(record) = s.ios.get_mut(op.io) else {
            return (None, false);
        };
        match (record.socket, op.socket) {
            (None, Some(sock)) => record.socket = Some(sock),
            (Some(a), Some(b)) if a != b => {
                problems.push(format!("{call:?} with socket {b:?} on the I/O of {a:?}"));
            }
            _ => {}
        }
        if matches!(call, Call::Bind(local) if local.is_ipv6()) && !record.ipv6_only {
            problems.push(format!(
                "{call:?}: an IPv6 listener bound without IPV6_V6ONLY (WSK's default is not documented)"
            ));
        }
        match call {
            Call::SetIpv6Only if record.kind != SocketKind::Listener => {
                problems.push("IPV6_V6ONLY set on a connection".into());
            }
            Call::SetNoDelay if record.kind != SocketKind::Connection => {
                problems.push("TCP_NODELAY set on a listener".into());
            }
            Call::SetNoDelay if record.received => {
                problems.push("TCP_NODELAY set after the connection's first receive".into());
            }
            Call::Receive(_) => record.received = true,
            _ => {}
        }
        let kind = call.kind();
        if record.outstanding.contains(&kind) {
            problems.push(format!(
                "{call:?}: a {kind:?} operation is already outstanding"
            ));
        }
        if call == Call::Close {
            record.close_issued = true;
        }
        record.outstanding.push(kind);
        record.token = Some(op.token);
        if call == Call::Disconnect {
            s.facts.insert("graceful disconnect issued");
        }
        for p in problems {
            Self::violation(&mut s, p);
        }
        let inline = match (mode, &call) {
            (Mode::Inline, Call::Receive(_)) | (Mode::Pending, _) => false,
            (Mode::InlineReceives(left), Call::Receive(_)) => {
                if left > 0 {
                    s.mode = Mode::InlineReceives(left - 1);
                }
                left > 0
            }
            (Mode::Inline | Mode::InlineReceives(_), _) => true,
        };
        let wakes_wsk = call == Call::Close
            || (completes_setup && matches!(call, Call::Open(_) | Call::Bind(_)));
        if inline {
            (Some(op), wakes_wsk)
        } else {
            s.pending.push(op);
            (None, wakes_wsk)
        }
    }

    /// One asynchronous call: enters, hands the request over (other threads may run from here,
    /// while the call executes), records it as pending, completes it if it completes inline
    /// (while the call is still executing, as an inline IRP completion does), returns.
    fn call(
        &self,
        io: &TestIo,
        socket: Option<TestSocket>,
        call: Call,
        token: SocketRef<TestProvider>,
    ) {
        io.cell.write();
        self.enter(Some(io.id), Entry::Call(call.clone()));
        let op = Op {
            io: io.id,
            socket,
            call,
            token,
        };
        match self.irps.get(op.irp()) {
            Some(irp) => {
                irp.fetch_add(1, Ordering::Release);
            }
            None if cfg!(loom) => super::violated("a model has more socket I/Os than MODEL_IOS"),
            None => {}
        }
        let (inline, wakes_wsk) = self.issue(op);
        if wakes_wsk {
            self.wsk_work.notify();
        }
        if let Some(op) = inline {
            if matches!(op.call, Call::Receive(_)) {
                self.deliver(op, b"x");
            } else {
                self.succeed(op);
            }
        }
        self.leave(Some(io.id));
        io.cell.write();
    }
}

// Every method is `#[inline(never)]`: the client calls them, and a profile of the client (the
// bench's callgrind runs) must tell the double's instructions from the client's.
impl Provider for TestProvider {
    type Socket = TestSocket;
    type SocketIo = TestIo;
    type Platform = TestPlatform;
    type DetachHandle = Arc<World>;

    #[inline(never)]
    fn new_socket_io(
        &self,
        kind: SocketKind,
        buffer: Option<NonNull<[u8]>>,
    ) -> Result<TestIo, NtStatus> {
        let mut s = self.world.state();
        if let Some(status) = s.io_failure {
            return Err(status);
        }
        if (kind == SocketKind::Connection) != buffer.is_some() {
            World::violation(
                &mut s,
                format!("{kind:?} socket I/O with buffer {buffer:?}"),
            );
        }
        s.ios.push(IoRecord {
            kind,
            socket: None,
            buffer: buffer.map(|b| (b.cast::<u8>().as_ptr() as usize, b.len())),
            outstanding: Vec::new(),
            executing: false,
            close_issued: false,
            closed: false,
            dropped: false,
            bound: false,
            ipv6_only: false,
            no_delay: false,
            received: false,
            token: None,
            callbacks: 0,
        });
        let id = s.ios.len() - 1;
        drop(s);
        Ok(TestIo {
            id,
            world: Arc::clone(&self.world),
            cell: Causality::new(),
        })
    }

    #[inline(never)]
    unsafe fn schedule(this: NonNull<Self>, io: NonNull<TestIo>, token: SocketRef<Self>) {
        // SAFETY: both valid at entry (caller); copied out before the run is queued.
        let world = Arc::clone(unsafe { &this.as_ref().world });
        // SAFETY: as above.
        let io = unsafe { io.as_ref() }.id;
        let me = current_thread();
        let mut s = world.state();
        if s.scheduled.iter().any(|(_, queued, _)| *queued == io) {
            World::violation(&mut s, "a socket's work item queued twice".into());
        }
        s.scheduled.push_back((me, io, token));
    }

    #[inline(never)]
    fn enable_accept_events(&self) -> Result<(), NtStatus> {
        self.world.enter(None, Entry::Named("enable_accept_events"));
        let result = {
            let mut s = self.world.state();
            if s.ios
                .iter()
                .any(|r| !r.dropped && (r.socket.is_some() || !r.outstanding.is_empty()))
            {
                World::violation(
                    &mut s,
                    "accept events enabled after a socket was created".into(),
                );
            }
            if s.accept_events_enabled {
                World::violation(&mut s, "accept events enabled twice".into());
            }
            s.accept_events_enabled = s.enable_result.is_ok();
            s.enable_result
        };
        self.world.leave(None);
        result
    }

    #[inline(never)]
    fn open_listener(&self, io: &TestIo, local: SocketAddr, token: SocketRef<Self>) {
        {
            let mut s = self.world.state();
            if !s.accept_events_enabled {
                World::violation(
                    &mut s,
                    "socket created before accept events were enabled".into(),
                );
            }
        }
        self.world.call(io, None, Call::Open(local), token);
    }

    #[inline(never)]
    fn set_option(
        &self,
        io: &TestIo,
        socket: TestSocket,
        option: SocketOption,
        token: SocketRef<Self>,
    ) {
        let call = match option {
            SocketOption::Ipv6Only => Call::SetIpv6Only,
            SocketOption::NoDelay => Call::SetNoDelay,
        };
        self.world.call(io, Some(socket), call, token);
    }

    #[inline(never)]
    fn bind(&self, io: &TestIo, socket: TestSocket, local: SocketAddr, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), Call::Bind(local), token);
    }

    #[inline(never)]
    fn receive(
        &self,
        io: &TestIo,
        socket: TestSocket,
        range: Range<usize>,
        token: SocketRef<Self>,
    ) {
        self.world
            .call(io, Some(socket), Call::Receive(range), token);
    }

    #[inline(never)]
    fn send(&self, io: &TestIo, socket: TestSocket, range: Range<usize>, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), Call::Send(range), token);
    }

    #[inline(never)]
    fn disconnect(&self, io: &TestIo, socket: TestSocket, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), Call::Disconnect, token);
    }

    #[inline(never)]
    fn close(&self, io: &TestIo, socket: TestSocket, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), Call::Close, token);
    }

    #[inline(never)]
    fn arm_timer(&self, delay_ms: u32, binding: BindingRef<Self>) {
        self.world
            .arm_timer(delay_ms, binding.as_context() as usize);
    }

    #[inline(never)]
    fn cancel_timer(&self) -> bool {
        self.world.cancel_timer()
    }

    #[inline(never)]
    fn detach_handle(&self) -> Arc<World> {
        // NMR may run cleanup (which frees this provider) inside the call: keep the world alive.
        Arc::clone(&self.world)
    }

    #[inline(never)]
    fn detach_complete(world: Arc<World>) {
        world.nmr_detach_complete();
    }
}
