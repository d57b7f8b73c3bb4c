//! The emulated NMR and WSK subsystem, driven by a small fake client (not the driver's core):
//! the emulation's own semantics, and that it catches a client that breaks the contract.

use std::{
    collections::VecDeque,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    ptr::NonNull,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use wsk_client::provider::{Completion, SocketKind, SocketOption};
use wsk_harness::{
    contract::Contract,
    nmr::{BindingHandle, ClientModule, ContextPtr, Nmr, NmrMode, ProviderCharacteristics},
    pool::Pool,
    wsk::{InlineMode, SocketHandle, SocketIo, Upcall, Wsk, WskClient, WskMode},
};
use wsk_primitives::{platform::Level, status::NtStatus};

const BUFFER: usize = 4096;

/// One fake socket; leaked so tokens can be `&'static`.
struct FakeSocket {
    client: &'static FakeClient,
    kind: SocketKind,
    handle: Mutex<Option<SocketHandle>>,
    io: OnceLock<SocketIo>,
    buffer: NonNull<[u8]>,
    local: SocketAddr,
    /// Provider calls executing on this socket, and whether a close waits for them.
    calls: Mutex<(usize, bool)>,
    /// Work for the socket's work item, and whether the work item is queued or running.
    work: Mutex<(VecDeque<Work>, bool)>,
}

/// What a fake socket's work item does: WSK calls are made there, never in a callback.
enum Work {
    /// A connection was accepted: post the first receive.
    Start,
    /// An operation completed: make the next call.
    Completed(Completion<SocketHandle>),
}

// SAFETY: the buffer is only touched by one operation at a time (the fake runs one operation
// per socket at a time), like the driver's echo buffer.
unsafe impl Send for FakeSocket {}
// SAFETY: as above.
unsafe impl Sync for FakeSocket {}

#[derive(Clone, Copy)]
struct Tok(&'static FakeSocket);

struct FakeClient {
    provider: OnceLock<WskClient<Tok>>,
    closed: AtomicUsize,
    conns: Mutex<Vec<&'static FakeSocket>>,
    errors: Mutex<Vec<String>>,
    /// Runs once inside the next send completion.
    on_sent: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Makes the next calls inside the completion routines themselves (a client breaking the
    /// rule the harness must catch) instead of from work items.
    calls_in_completions: AtomicBool,
    /// Binds IPv6 listeners without setting `IPV6_V6ONLY` first (a client relying on WSK's
    /// undocumented default).
    skip_ipv6_only: AtomicBool,
}

impl FakeSocket {
    fn new(client: &'static FakeClient, kind: SocketKind, local: SocketAddr) -> &'static Self {
        let buffer: &'static mut [u8] = Box::leak(vec![0_u8; BUFFER].into_boxed_slice());
        Box::leak(Box::new(Self {
            client,
            kind,
            handle: Mutex::new(None),
            io: OnceLock::new(),
            buffer: NonNull::from(buffer),
            local,
            calls: Mutex::new((0, false)),
            work: Mutex::new((VecDeque::new(), false)),
        }))
    }
    /// Hands `work` to the socket's work item, queueing it unless it is queued or running.
    fn defer(&'static self, work: Work) {
        let queue = {
            let mut state = self.work.lock().unwrap();
            state.0.push_back(work);
            !std::mem::replace(&mut state.1, true)
        };
        if queue {
            self.provider().queue_work_item(self.io(), Tok(self));
        }
    }
    fn provider(&self) -> &WskClient<Tok> {
        self.client.provider.get().expect("attached")
    }
    fn io(&self) -> &SocketIo {
        self.io.get().expect("socket io")
    }
    fn handle(&self) -> SocketHandle {
        self.handle.lock().unwrap().expect("handle")
    }
    /// Closes now, or once the provider call running on this socket has returned: closing
    /// while a call on the socket executes is what the harness must catch.
    fn close_after_call(&'static self) {
        let mut calls = self.calls.lock().unwrap();
        if calls.0 > 0 {
            calls.1 = true;
        } else {
            drop(calls);
            self.close();
        }
    }
    fn call(&'static self, f: impl FnOnce(&WskClient<Tok>)) {
        self.calls.lock().unwrap().0 += 1;
        f(self.provider());
        let mut calls = self.calls.lock().unwrap();
        calls.0 -= 1;
        let close = calls.0 == 0 && std::mem::take(&mut calls.1);
        drop(calls);
        if close {
            self.close();
        }
    }
    fn close(&'static self) {
        self.provider().close(self.io(), self.handle(), Tok(self));
    }
}

impl Tok {
    /// What follows a completion: the next call, a close, or a note of the error.
    fn completed(self, completion: Completion<SocketHandle>) {
        let s = self.0;
        match completion {
            Completion::Created(Ok(handle)) => {
                *s.handle.lock().unwrap() = Some(handle);
                if s.local.is_ipv6() && !s.client.skip_ipv6_only.load(Ordering::SeqCst) {
                    s.provider()
                        .set_option(s.io(), handle, SocketOption::Ipv6Only, self);
                } else {
                    s.provider().bind(s.io(), handle, s.local, self);
                }
            }
            Completion::OptionSet(Ok(())) => {
                s.provider().bind(s.io(), s.handle(), s.local, self);
            }
            Completion::Bound(Ok(())) => {}
            Completion::Received(Ok(0)) => s.call(|p| p.disconnect(s.io(), s.handle(), self)),
            Completion::Received(Ok(n)) => s.call(|p| p.send(s.io(), s.handle(), 0..n, self)),
            Completion::Sent(Ok(_)) => {
                s.call(|p| p.receive(s.io(), s.handle(), 0..BUFFER, self));
            }
            Completion::Disconnected(Ok(())) => s.close_after_call(),
            Completion::Closed => {
                s.client.closed.fetch_add(1, Ordering::SeqCst);
            }
            other => {
                s.client
                    .errors
                    .lock()
                    .unwrap()
                    .push(format!("{:?}: {other:?}", s.kind));
                if s.kind == SocketKind::Connection
                    && !matches!(other, Completion::Received(Err(NtStatus::CANCELLED)))
                {
                    s.close_after_call();
                }
            }
        }
    }
}

impl Upcall for Tok {
    unsafe fn complete(self, completion: Completion<SocketHandle>) {
        let s = self.0;
        if matches!(completion, Completion::Sent(Ok(_))) {
            let hook = s.client.on_sent.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
        }
        if s.client.calls_in_completions.load(Ordering::SeqCst) {
            self.completed(completion);
        } else {
            s.defer(Work::Completed(completion));
        }
    }

    unsafe fn run_work_item(self) {
        let s = self.0;
        loop {
            let next = {
                let mut state = s.work.lock().unwrap();
                let next = state.0.pop_front();
                state.1 = next.is_some();
                drop(state);
                next
            };
            let Some(work) = next else { return };
            match work {
                Work::Start => {
                    s.call(|p| p.receive(s.io(), s.handle(), 0..BUFFER, self));
                }
                Work::Completed(completion) => self.completed(completion),
            }
        }
    }

    unsafe fn accept_event(
        self,
        accepted: Option<SocketHandle>,
        _remote: Option<SocketAddr>,
        write_out: &mut dyn FnMut(Option<Self>),
    ) -> NtStatus {
        let Some(accepted) = accepted else {
            return NtStatus::REQUEST_NOT_ACCEPTED;
        };
        let conn = FakeSocket::new(self.0.client, SocketKind::Connection, self.0.local);
        *conn.handle.lock().unwrap() = Some(accepted);
        let Ok(io) = conn
            .provider()
            .new_socket_io(SocketKind::Connection, Some(conn.buffer))
        else {
            return NtStatus::REQUEST_NOT_ACCEPTED;
        };
        let _ = conn.io.set(io);
        conn.client.conns.lock().unwrap().push(conn);
        // The out-parameters first, then the first I/O on the accepted socket (from its work
        // item, after this callback returned).
        write_out(Some(Self(conn)));
        conn.defer(Work::Start);
        NtStatus::SUCCESS
    }
}

/// The fake client module: attaches, opens one listener per address, detaches at once.
struct FakeModule {
    client: &'static FakeClient,
    listen: Vec<SocketAddr>,
    listeners: Mutex<Vec<&'static FakeSocket>>,
}

impl ClientModule<Wsk<Tok>> for FakeModule {
    fn attach_provider(
        &self,
        handle: BindingHandle<Wsk<Tok>>,
        _provider: ProviderCharacteristics,
    ) -> NtStatus {
        match handle.client_attach_provider(ContextPtr(std::ptr::null_mut())) {
            Ok(provider) => {
                let _ = self.client.provider.set(provider);
            }
            Err(status) => return status,
        }
        let provider = self.client.provider.get().expect("set");
        if let Err(status) = provider.enable_accept_events() {
            return status;
        }
        for local in &self.listen {
            let listener = FakeSocket::new(self.client, SocketKind::Listener, *local);
            let _ = listener.io.set(
                provider
                    .new_socket_io(SocketKind::Listener, None)
                    .expect("io"),
            );
            self.listeners.lock().unwrap().push(listener);
            provider.open_listener(listener.io(), *local, Tok(listener));
        }
        NtStatus::SUCCESS
    }

    fn detach_provider(&self, _context: ContextPtr) -> NtStatus {
        // Deliberately sloppy for the fake: closes listeners and reports success at once.
        for listener in self.listeners.lock().unwrap().drain(..) {
            listener.close();
        }
        NtStatus::SUCCESS
    }

    fn cleanup_binding_context(&self, _context: ContextPtr) {}
}

struct Setup {
    contract: Arc<Contract>,
    nmr: Nmr<Wsk<Tok>>,
    wsk: Wsk<Tok>,
    client: &'static FakeClient,
}

fn setup(inline: InlineMode, listen: &[&str]) -> Setup {
    setup_client(inline, listen, false)
}

/// [`setup`] with a fake client that binds IPv6 listeners without `IPV6_V6ONLY` if
/// `skip_ipv6_only`.
fn setup_client(inline: InlineMode, listen: &[&str], skip_ipv6_only: bool) -> Setup {
    let contract = Arc::new(Contract::new());
    let pool = Pool::new(Arc::clone(&contract), Some(Level::Warning));
    let wsk = Wsk::start(
        Arc::clone(&contract),
        pool,
        WskMode {
            inline,
            workers: 2,
            ..WskMode::default()
        },
    )
    .expect("wsk");
    let nmr = Nmr::new(Arc::clone(&contract), NmrMode::default());
    nmr.register_provider(Arc::new(wsk.clone()));
    let client: &'static FakeClient = Box::leak(Box::new(FakeClient {
        provider: OnceLock::new(),
        closed: AtomicUsize::new(0),
        conns: Mutex::new(Vec::new()),
        errors: Mutex::new(Vec::new()),
        on_sent: Mutex::new(None),
        calls_in_completions: AtomicBool::new(false),
        skip_ipv6_only: AtomicBool::new(skip_ipv6_only),
    }));
    let module = Arc::new(FakeModule {
        client,
        listen: listen.iter().map(|a| a.parse().unwrap()).collect(),
        listeners: Mutex::new(Vec::new()),
    });
    nmr.register_client(module as Arc<dyn ClientModule<Wsk<Tok>>>);
    Setup {
        contract,
        nmr,
        wsk,
        client,
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn echo_once(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(payload).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).expect("read back");
    back
}

#[test]
fn v4_and_v6_listeners_share_a_port_number_and_echo() {
    for inline in [InlineMode::Never, InlineMode::Always, InlineMode::Alternate] {
        let s = setup(inline, &["127.0.0.1:0", "[::1]:0"]);
        wait_for("two listeners", || s.wsk.listening().len() == 2);
        let listening = s.wsk.listening();
        // V6ONLY: a v6 listener on the v4 listener's port number is possible.
        let v4 = listening[0];
        let payload: Vec<u8> = (0..100_000_u32).map(|i| (i % 251) as u8).collect();
        for addr in &listening {
            assert_eq!(echo_once(*addr, &payload), payload);
        }
        // The subsystem counts an accept once the accept event returned, and the connection's
        // work item may finish its whole echo before that: wait for both counts.
        wait_for("connections closed", || {
            s.client.closed.load(Ordering::SeqCst) == 2 && s.wsk.counters().accepted == 2
        });
        assert_eq!(s.wsk.counters().graceful, 2);
        assert!(v4.is_ipv4());
        assert_eq!(s.nmr.deregister_client(), NtStatus::PENDING);
        assert!(s.nmr.wait_client_deregistered());
        assert_eq!(s.wsk.open_sockets(), 0);
        assert!(
            s.client.errors.lock().unwrap().is_empty(),
            "{:?}",
            s.client.errors.lock().unwrap()
        );
        assert_eq!(s.contract.count(), 0, "{:?}", s.contract.violations());
        s.wsk.stop();
    }
}

#[test]
fn close_cancels_a_pending_receive_and_resets_the_peer() {
    let s = setup(InlineMode::Never, &["127.0.0.1:0"]);
    wait_for("listener", || s.wsk.listening().len() == 1);
    let mut stream = TcpStream::connect(s.wsk.listening()[0]).unwrap();
    wait_for("accept", || s.client.conns.lock().unwrap().len() == 1);
    let conn = s.client.conns.lock().unwrap()[0];
    // The peer sent nothing, so the connection's receive is pending: close cancels it.
    conn.close();
    wait_for("cancellation", || {
        !s.client.errors.lock().unwrap().is_empty()
    });
    assert_eq!(
        *s.client.errors.lock().unwrap(),
        [format!(
            "Connection: Received(Err({:?}))",
            NtStatus::CANCELLED
        )]
    );
    wait_for("closed", || s.client.closed.load(Ordering::SeqCst) == 1);
    // Not both directions shut down: the close was abortive.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let error = stream.read(&mut [0_u8; 16]).expect_err("reset");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    assert_eq!(s.wsk.counters().aborted, 1);
    assert_eq!(s.nmr.deregister_client(), NtStatus::PENDING);
    assert!(s.nmr.wait_client_deregistered());
    assert_eq!(s.contract.count(), 0, "{:?}", s.contract.violations());
    s.wsk.stop();
}

#[test]
fn bind_to_a_port_in_use_fails_with_address_already_exists() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let s = setup(InlineMode::Always, &[&addr]);
    wait_for("bind failure", || {
        !s.client.errors.lock().unwrap().is_empty()
    });
    assert_eq!(
        *s.client.errors.lock().unwrap(),
        [format!(
            "Listener: Bound(Err({:?}))",
            NtStatus::ADDRESS_ALREADY_EXISTS
        )]
    );
    assert!(s.wsk.listening().is_empty());
    assert_eq!(s.nmr.deregister_client(), NtStatus::PENDING);
    assert!(s.nmr.wait_client_deregistered());
    assert_eq!(s.contract.count(), 0, "{:?}", s.contract.violations());
    s.wsk.stop();
}

#[test]
fn static_event_callbacks_after_a_socket_was_created_are_a_violation() {
    let s = setup(InlineMode::Never, &["127.0.0.1:0"]);
    wait_for("listener", || s.wsk.listening().len() == 1);
    assert_eq!(s.contract.count(), 0);
    let _ = s.client.provider.get().unwrap().enable_accept_events();
    let violations = s.contract.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].contains("must come first"), "{violations:?}");
    assert_eq!(s.nmr.deregister_client(), NtStatus::PENDING);
    assert!(s.nmr.wait_client_deregistered());
    s.wsk.stop();
}

#[test]
fn a_call_after_detach_and_an_open_socket_at_detach_are_violations() {
    let s = setup(InlineMode::Never, &["127.0.0.1:0"]);
    wait_for("listener", || s.wsk.listening().len() == 1);
    let _stream = TcpStream::connect(s.wsk.listening()[0]).unwrap();
    wait_for("accept", || s.client.conns.lock().unwrap().len() == 1);
    let conn = s.client.conns.lock().unwrap()[0];
    // The fake's detach closes only its listener: the connection is still open.
    assert_eq!(s.nmr.deregister_client(), NtStatus::PENDING);
    assert!(s.nmr.wait_client_deregistered());
    let violations = s.contract.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].contains("socket(s) still open"),
        "{violations:?}"
    );
    // The subsystem tore the connection down itself.
    assert_eq!(s.wsk.open_sockets(), 0);
    // And a call into WSK after the detach completed.
    conn.provider()
        .send(conn.io(), conn.handle(), 0..1, Tok(conn));
    let violations = s.contract.violations();
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(
        violations[1].contains("WskSend called after the detach"),
        "{violations:?}"
    );
    s.wsk.stop();
}

#[test]
fn wildcard_listeners_share_a_port_only_with_ipv6_only_set() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let v4 = format!("0.0.0.0:{port}");
    let v6 = format!("[::]:{port}");
    let listen = [v6.as_str(), v4.as_str()];
    let s = setup_client(InlineMode::Never, &listen, false);
    wait_for("two listeners", || s.wsk.listening().len() == 2);
    assert_eq!(s.contract.count(), 0, "{:?}", s.contract.violations());
    assert_eq!(s.nmr.deregister_client(), NtStatus::PENDING);
    assert!(s.nmr.wait_client_deregistered());
    s.wsk.stop();

    let s = setup_client(InlineMode::Never, &listen, true);
    wait_for("the violation", || s.contract.count() > 0);
    let violations = s.contract.violations();
    assert!(
        violations[0].contains("without IPV6_V6ONLY"),
        "{violations:?}"
    );
    wait_for("the IPv4 bind's failure", || {
        s.client.errors.lock().unwrap().len() == 1
    });
    assert!(
        s.client.errors.lock().unwrap()[0].contains("Bound(Err"),
        "the IPv4 and the dual-stack IPv6 listener collide, whichever binds second fails: {:?}",
        s.client.errors.lock().unwrap()
    );
    s.wsk.stop();
}

#[test]
fn a_wsk_call_inside_a_completion_routine_is_a_violation() {
    let s = setup(InlineMode::Never, &["127.0.0.1:0"]);
    wait_for("listener", || s.wsk.listening().len() == 1);
    assert_eq!(s.contract.count(), 0, "{:?}", s.contract.violations());
    s.client.calls_in_completions.store(true, Ordering::SeqCst);
    let mut stream = TcpStream::connect(s.wsk.listening()[0]).unwrap();
    stream.write_all(b"x").unwrap();
    wait_for("the violation", || s.contract.count() > 0);
    let violations = s.contract.violations();
    assert!(
        violations[0].contains("WskSend called inside an IoCompletion routine"),
        "{violations:?}"
    );
    s.client.calls_in_completions.store(false, Ordering::SeqCst);
    s.wsk.stop();
}

#[test]
fn a_detach_completed_while_a_call_has_not_returned_is_a_violation() {
    let s = setup(InlineMode::Always, &["127.0.0.1:0"]);
    wait_for("listener", || s.wsk.listening().len() == 1);
    // Inside the inline completion of the echo's WskSend (so WskSend has not returned), the
    // client deregisters; the fake's detach then reports SUCCESS at once.
    let nmr = s.nmr.clone();
    *s.client.on_sent.lock().unwrap() = Some(Box::new(move || {
        let _ = nmr.deregister_client();
    }));
    let mut stream = TcpStream::connect(s.wsk.listening()[0]).unwrap();
    stream.write_all(b"x").unwrap();
    wait_for("the deregistration", || !s.nmr.client_registered());
    let violations = s.contract.violations();
    assert!(
        violations
            .iter()
            .any(|v| v.contains("WSK call(s) had not returned")),
        "{violations:?}"
    );
    s.wsk.stop();
}
