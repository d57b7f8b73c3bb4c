//! Accept events: admitting the connection a listener's accept event delivered.
//!
//! The binding's limits come first, then a new socket; [`Accepted`] is the taken connection,
//! which the accept event starts once its out-parameters are written.

use ::core::net::{IpAddr, SocketAddr};
use ::core::ptr::NonNull;

use crate::{
    binding_state::BindingState,
    provider::{Provider, SocketKind},
    socket::{InstallError, Socket, SocketRef},
    stats::{Refusal, Stats},
};
#[cfg(doc)]
use wsk_primitives::slots::Slots;
use wsk_primitives::{log_info, log_warning, status::NtStatus};

/// The binding a listener belongs to.
type Binding<P> = BindingState<P, Socket<P>>;

impl<P: Provider> SocketRef<P> {
    /// `WskAcceptEvent` on a listener's token, at IRQL <= `DISPATCH_LEVEL`. `accepted` is the
    /// new socket (`None`: the listening socket stopped working, so it is closed; the result
    /// is then an error to ignore), `remote` the peer's address when known.
    ///
    /// `Ok(accepted)`: the connection was taken and is inert. Write the out-parameters
    /// (`*AcceptSocketContext` = NULL and `*AcceptSocketDispatch` = NULL: the client enables no
    /// event callback on connections), then call [`Accepted::start`], then return
    /// `STATUS_SUCCESS`. `Err(status)`: the status to log; return
    /// `STATUS_REQUEST_NOT_ACCEPTED` (WSK closes the socket): the binding is detaching, a limit
    /// is reached, or memory ran out
    /// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_accept_event>).
    ///
    /// # Errors
    /// As above.
    ///
    /// # Safety
    /// `self` is a listener's token, called while WSK may call its accept event (before its
    /// close completed).
    pub unsafe fn accept_event(
        self,
        accepted: Option<P::Socket>,
        remote: Option<SocketAddr>,
    ) -> Result<Accepted<P>, NtStatus> {
        // SAFETY: WSK does not call the accept event of a listener whose close completed, and
        // the listener is freed only after that.
        let listener = unsafe { self.socket().as_ref() };
        if listener.kind() != SocketKind::Listener {
            return Err(NtStatus::INVALID_DEVICE_STATE);
        }
        let Some(handle) = accepted else {
            // SAFETY: live, as above.
            unsafe { Socket::listener_dead(self.socket()) };
            return Err(NtStatus::REQUEST_NOT_ACCEPTED);
        };
        // SAFETY: the listener holds a binding reference.
        unsafe { admit(listener.binding_ptr(), listener.local(), handle, remote) }
            .map(|token| Accepted { token })
    }
}

/// A connection [`SocketRef::accept_event`] took, inert until [`Accepted::start`].
///
/// Until then no provider call on it is made or pending, so the accept event can write its
/// out-parameters before any I/O on the accepted socket starts.
///
/// Dropping it starts the connection too, so a caller that forgets [`Accepted::start`] leaks
/// nothing (it only starts later than it should).
#[must_use = "an accepted connection makes no progress until started"]
pub struct Accepted<P: Provider> {
    token: SocketRef<P>,
}

impl<P: Provider> Drop for Accepted<P> {
    fn drop(&mut self) {
        // SAFETY: not started yet (the accept event made this once, and this is its only
        // start).
        unsafe { Socket::start(self.token.socket()) };
    }
}

impl<P: Provider> Accepted<P> {
    /// The connection's token (for a harness or test that tracks it; the kernel writes NULL
    /// as the accept socket context).
    #[must_use]
    pub const fn token(&self) -> SocketRef<P> {
        self.token
    }

    /// Starts the connection: its first run is scheduled (the first receive, or a close
    /// requested meanwhile by a detach). Call it after writing the accept event's out-parameters,
    /// before the accept event returns `STATUS_SUCCESS`.
    pub fn start(self) {
        drop(self); // `Drop` posts the start.
    }
}

/// An accept event on listener `local` of the binding at `this` delivered `handle`: takes it
/// or refuses it.
///
/// Refused, with no allocation and the reason counted: while detaching; when
/// `MaxConnections` are open; when `remote`'s address already holds
/// `MaxConnectionsPerAddress` connections (its connection slots carry the address's label,
/// [`Slots::label_and_count`]; a peer whose address WSK did not give is not limited); when
/// the connection's memory or I/O resources cannot be had. The per-address check reads the
/// connection slots until it has counted one more than the limit (at most all of them
/// once): a cost per accept event, none per message.
///
/// # Safety
/// Called from the accept event of a live listener of the binding at `this`.
unsafe fn admit<P: Provider>(
    this: NonNull<Binding<P>>,
    local: SocketAddr,
    handle: P::Socket,
    remote: Option<SocketAddr>,
) -> Result<SocketRef<P>, NtStatus> {
    // SAFETY: the listener holds a binding reference.
    let binding = unsafe { this.as_ref() };
    let client = binding.client();
    let stats = client.stats();
    let peer = PeerText(remote);
    let refuse = |reason: Refusal, why: &dyn ::core::fmt::Display| {
        stats.refuse(reason);
        log_warning!(
            client.platform(),
            "connection {peer} on {local}: refused: {why}"
        );
        Err(NtStatus::REQUEST_NOT_ACCEPTED)
    };
    if binding.rundown().is_closing() {
        return refuse(Refusal::Detaching, &"detaching");
    }
    let connections = binding.connection_slots();
    let Some(slot) = binding.slots().reserve_in(connections.clone()) else {
        return refuse(
            Refusal::MaxConnections,
            &format_args!(
                "MaxConnections ({}) open",
                client.config().max_connections()
            ),
        );
    };
    if let (Some(limit), Some(remote)) = (client.config().max_connections_per_address(), remote) {
        let label = address_label(remote.ip());
        let limit_slots = usize::try_from(limit).unwrap_or(usize::MAX);
        // Counting stops one past the limit: a flood over its quota costs no full scan.
        let held = binding.slots().label_and_count(
            slot,
            label,
            connections,
            limit_slots.saturating_add(1),
        );
        if held > limit_slots {
            binding.slots().vacate(slot);
            return refuse(
                Refusal::PerAddress,
                &format_args!(
                    "{} holds MaxConnectionsPerAddress ({limit}) connections",
                    remote.ip()
                ),
            );
        }
    }
    // SAFETY: a live listener of this binding holds a binding reference; slot reserved.
    let result = unsafe {
        Socket::<P>::install(
            this,
            slot,
            SocketKind::Connection,
            local,
            remote,
            Some(handle),
            false,
        )
    };
    match result {
        Ok(token) => {
            Stats::bump(&stats.accepted);
            Stats::bump(&stats.active);
            log_info!(client.platform(), "connection {peer} on {local}: accepted");
            Ok(token)
        }
        Err(InstallError::Detaching) => refuse(Refusal::Detaching, &"detaching"),
        Err(InstallError::NoMemory) => {
            Stats::bump(&stats.failures);
            refuse(Refusal::NoResources, &NtStatus::INSUFFICIENT_RESOURCES)
        }
        Err(InstallError::Io(io_status)) => {
            Stats::bump(&stats.failures);
            refuse(
                Refusal::NoResources,
                &format_args!("socket I/O resources: {io_status}"),
            )
        }
    }
}

/// The slot label of a peer address for `MaxConnectionsPerAddress` (never 0, which means no
/// label). An IPv4 address and its IPv4-mapped IPv6 form are one address: `1 << 32 | a.b.c.d`.
/// Other IPv6 addresses (scope id ignored) take a 63-bit FNV-1a hash of their 16 bytes with
/// the top bit set, so they never meet an IPv4 label; two IPv6 addresses whose hashes collide
/// (about 2^-63 for a given pair) share one quota.
const fn address_label(ip: IpAddr) -> u64 {
    let v6 = match ip {
        IpAddr::V4(v4) => return 1 << 32 | v4.to_bits() as u64,
        IpAddr::V6(v6) => v6,
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return 1 << 32 | v4.to_bits() as u64;
    }
    let bytes = v6.octets();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash | 1 << 63
}

/// A peer address for log lines (`?` when unknown).
struct PeerText(Option<SocketAddr>);

impl ::core::fmt::Display for PeerText {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("?"),
        }
    }
}
