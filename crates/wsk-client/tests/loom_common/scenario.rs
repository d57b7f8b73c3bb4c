//! The starting point of the models: a client with one attached binding, its listener
//! listening and some connections accepted, each with its first receive pending — built on
//! the model's main thread before any other thread exists, so it costs no interleavings.

use std::{
    alloc::{self, Layout},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    ptr::NonNull,
    sync::Arc,
};

use loom::thread;
use wsk_client::{
    client::Client,
    config::{Config, MIN_BUFFER_SIZE},
    testing::{
        TestPlatform,
        mirror::MIRROR,
        provider::{Call, Cleanup, Mode, Op, TestProvider, World},
        scenario,
    },
    wsk_version::{WSK_VERSION_1_0, WskVersionRange},
};
use wsk_primitives::{status::NtStatus, testing::FREED};

use crate::loom_common::violated;

/// The port the model listener listens on.
const PORT: u16 = 40007;

/// The WSK versions the model provider supports.
pub const WSK_VERSIONS: WskVersionRange = WskVersionRange {
    highest: WSK_VERSION_1_0,
    lowest: WSK_VERSION_1_0,
};

/// One listener on 127.0.0.1, room for `max_connections`, the smallest buffer, `NoDelay`
/// off (a connection's first call is then its receive, as the models expect).
#[must_use]
pub fn config(max_connections: usize) -> Config {
    let max = u32::try_from(max_connections.max(1)).unwrap_or(1);
    scenario::config(&["127.0.0.1:40007"], max, MIN_BUFFER_SIZE)
}

/// The client as the driver's global state: it lives until Unload, then is dropped and its
/// memory poisoned (and kept until the execution ends), so that core code still touching it
/// after Unload returned trips loom, as it would crash a real system once the image is gone.
pub struct DriverGlobals {
    client: NonNull<Client<TestProvider>>,
    unloaded: bool,
}

// SAFETY: only the model's main thread uses the holder; the client itself is shared with core
// code on other threads through the binding, as in the driver.
unsafe impl Send for DriverGlobals {}
// SAFETY: as above.
unsafe impl Sync for DriverGlobals {}

impl DriverGlobals {
    fn new(client: Client<TestProvider>) -> Self {
        Self {
            client: NonNull::from(Box::leak(Box::new(client))),
            unloaded: false,
        }
    }

    /// The client; fails the model after [`DriverGlobals::unload`].
    #[must_use]
    pub fn get(&self) -> &Client<TestProvider> {
        if self.unloaded {
            violated(format_args!("the model used the client after Unload"));
        }
        // SAFETY: not unloaded, so the client is live; it never moves.
        unsafe { self.client.as_ref() }
    }

    /// Unload returns: drops the client and poisons its memory.
    pub fn unload(&mut self) {
        if std::mem::replace(&mut self.unloaded, true) {
            return;
        }
        // SAFETY: the client is live (not unloaded before) and not used after this.
        unsafe { self.client.as_ptr().drop_in_place() };
        // SAFETY: the memory is the client's own allocation, now dead.
        unsafe {
            self.client
                .as_ptr()
                .cast::<u8>()
                .write_bytes(FREED, size_of::<Client<TestProvider>>());
        }
    }
}

impl Drop for DriverGlobals {
    fn drop(&mut self) {
        self.unload();
        // SAFETY: allocated by `Box::new` with this layout, dropped in place by `unload`.
        unsafe {
            alloc::dealloc(
                self.client.as_ptr().cast(),
                Layout::new::<Client<TestProvider>>(),
            );
        }
    }
}

/// A client attached to the model WSK.
pub struct Scenario {
    /// The model WSK and NMR.
    pub world: Arc<World>,
    /// The pool the client allocates from.
    pub platform: TestPlatform,
    /// The client (Unload's global state).
    pub client: DriverGlobals,
    /// The listener's I/O id in the model WSK.
    pub listener: usize,
    /// The I/O ids of the accepted connections.
    pub connections: Vec<usize>,
}

impl Scenario {
    /// A world whose NMR runs cleanup as soon as the detach is complete, and a client not
    /// attached yet, with room for `max_connections`.
    fn unattached_with(max_connections: usize) -> Self {
        let world = World::new(Mode::Pending);
        world.set_cleanup(Cleanup::WhenDetached);
        let platform = TestPlatform::default();
        let client = DriverGlobals::new(Client::new(
            config(max_connections),
            MIRROR,
            platform.clone(),
        ));
        Self {
            world,
            platform,
            client,
            listener: usize::MAX,
            connections: Vec::new(),
        }
    }

    /// A client not attached yet: for the model where NMR detaches while the attach runs.
    /// [`Scenario::attach`] attaches it.
    #[must_use]
    pub fn unattached() -> Self {
        Self::unattached_with(1)
    }

    /// `ClientAttachProvider` on this thread, with NMR free to call the detach (on a thread
    /// in [`World::wait_attached`]) as soon as `NmrClientAttachProvider` succeeded.
    pub fn attach(&self) {
        // SAFETY: the client never moves, and is dropped only by `unload`, after every binding
        // is gone.
        let status = unsafe { self.world.attach(self.client.get(), WSK_VERSIONS) };
        if status != NtStatus::SUCCESS {
            violated(format_args!("attach returned {status}"));
        }
    }

    /// Attaches, brings the listener up and accepts `connections` connections; each ends with
    /// its first receive pending.
    #[must_use]
    pub fn new(connections: usize) -> Self {
        let mut scenario = Self::unattached_with(connections + 1);
        scenario.attach();
        let world = &scenario.world;
        let open = take_expected(world, |p| matches!(p.call, Call::Open(_)), "open_listener");
        scenario.listener = open.io;
        world.succeed(open);
        let bind = take_expected(world, |p| matches!(p.call, Call::Bind(_)), "bind");
        world.succeed(bind);
        for _ in 0..connections {
            match scenario.world.accept_on(scenario.listener, Some(remote())) {
                Some(Ok(io)) => scenario.connections.push(io),
                other => violated(format_args!(
                    "connection refused before any detach: {other:?}"
                )),
            }
        }
        for &io in &scenario.connections {
            let receives = scenario
                .world
                .pending()
                .iter()
                .filter(|p| p.io == io && matches!(p.call, Call::Receive(_)))
                .count();
            if receives != 1 {
                violated(format_args!(
                    "a new connection has {receives} receives pending, not 1"
                ));
            }
        }
        scenario.world.clear_facts();
        scenario
    }
}

/// Takes the one pending operation `filter` accepts, or fails the model.
fn take_expected(world: &World, filter: impl Fn(&Op) -> bool, what: &str) -> Op {
    world.take(filter).unwrap_or_else(|| {
        violated(format_args!(
            "{what} was not called: pending {:?}",
            world.pending()
        ))
    })
}

/// A remote address for accepted connections.
#[must_use]
pub const fn remote() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 50000))
}

/// The listen address.
#[must_use]
pub const fn local() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORT))
}

impl Scenario {
    /// Unload, after the detach: waits until no binding is live ([`World::wait_unloadable`]),
    /// as the driver's Unload does after `NmrWaitForClientDeregisterComplete`, then drops the
    /// client and poisons its memory. Does nothing the second time.
    pub fn unload(&mut self) {
        if self.client.unloaded {
            return;
        }
        let client = self.client.get();
        self.world.wait_unloadable(|| client.live_bindings());
        self.client.unload();
    }

    /// The end of every model: WSK completes what is left, Unload runs, and every check of
    /// [`World::assert_unloaded`] must hold, and the pool must be empty. Returns the facts of
    /// the execution.
    pub fn finish(mut self) -> Vec<&'static str> {
        self.world.drain();
        self.unload();
        self.world.assert_unloaded();
        self.platform.assert_clean();
        self.world.facts()
    }
}

/// WSK on its own thread ([`World::serve_until_detached`]): completes the operations of
/// sockets being closed as soon as there are any, until the client's detach is complete.
pub fn spawn_wsk(world: &Arc<World>) -> thread::JoinHandle<()> {
    let world = Arc::clone(world);
    thread::spawn(move || world.serve_until_detached())
}
