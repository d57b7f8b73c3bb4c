//! Per-socket I/O resources: one driver-owned IRP per operation kind, the connection's MDL, the
//! memory WSK reads while an operation is outstanding (the `WSK_BUF`s, the bind address), and
//! the socket's work item (`work_item.rs`).
//!
//! The core keeps at most one outstanding operation of each [`OpKind`] per socket, so each
//! [`OpSlot`] is used by one operation at a time, and it drops a `SocketIo` only when no
//! operation is outstanding. The `SocketIo` lives inside the core's socket object (non-paged
//! pool) and does not move while operations are outstanding.

use core::{cell::UnsafeCell, ptr::NonNull};

use wdk_sys::DRIVER_OBJECT;

use crate::ffi::wsk::WSK_BUF;
use crate::{address::SockaddrStorage, irp::OwnedIrp, mdl::OwnedMdl, work_item::OwnedWorkItem};
use wsk_client::provider::{OpKind, SocketKind};

/// The IRP of one operation kind and the memory its call points WSK to.
pub struct OpSlot {
    /// The dedicated IRP.
    pub irp: OwnedIrp,
    /// The `WSK_BUF` of a send or receive (must stay valid until the IRP completes).
    buf: UnsafeCell<WSK_BUF>,
    /// The local address of a bind.
    address: UnsafeCell<SockaddrStorage>,
    /// The value of a `WskControlSocket(WskSetOption)` (a `ULONG`, as `IPV6_V6ONLY` and
    /// `TCP_NODELAY` take).
    option: UnsafeCell<u32>,
}

// SAFETY: the cells are only written while the slot is idle, by the single thread that is
// about to start its operation (see the module documentation); the IRP is Send. The raw MDL
// pointer inside the WSK_BUF cell points to the socket's own MDL, which moves with it.
#[allow(clippy::non_send_fields_in_send_ty)]
unsafe impl Send for OpSlot {}
// SAFETY: as above: shared access never writes a cell of a busy slot.
unsafe impl Sync for OpSlot {}

impl OpSlot {
    fn allocate() -> Option<Self> {
        Some(Self {
            irp: OwnedIrp::allocate()?,
            buf: UnsafeCell::new(WSK_BUF {
                Mdl: core::ptr::null_mut(),
                Offset: 0,
                Length: 0,
            }),
            address: UnsafeCell::new(SockaddrStorage::from_socket_addr(
                core::net::SocketAddr::V4(core::net::SocketAddrV4::new(
                    core::net::Ipv4Addr::UNSPECIFIED,
                    0,
                )),
            )),
            option: UnsafeCell::new(0),
        })
    }

    /// Stores `buf` for the next call and returns the pointer to pass to WSK.
    ///
    /// # Safety
    /// No operation using this slot is outstanding.
    pub const unsafe fn set_buf(&self, buf: WSK_BUF) -> *mut WSK_BUF {
        let slot = self.buf.get();
        // SAFETY: the slot is idle (caller), so nobody else reads or writes it.
        unsafe { slot.write(buf) };
        slot
    }

    /// Stores the option value for the next `WskControlSocket` and returns the pointer to pass
    /// to WSK.
    ///
    /// # Safety
    /// No operation using this slot is outstanding.
    pub const unsafe fn set_option(&self, value: u32) -> *mut u32 {
        let slot = self.option.get();
        // SAFETY: the slot is idle (caller), so nobody else reads or writes it.
        unsafe { slot.write(value) };
        slot
    }

    /// Stores `address` for the next call and returns the pointer to pass to WSK.
    ///
    /// # Safety
    /// No operation using this slot is outstanding.
    pub const unsafe fn set_address(&self, address: SockaddrStorage) -> *mut SockaddrStorage {
        let slot = self.address.get();
        // SAFETY: the slot is idle (caller), so nobody else reads or writes it.
        unsafe { slot.write(address) };
        slot
    }
}

/// The I/O resources of one socket ([`wsk_client::provider::Provider::SocketIo`]).
pub struct WskSocketIo {
    setup: Option<OpSlot>,
    receive: Option<OpSlot>,
    send: Option<OpSlot>,
    disconnect: Option<OpSlot>,
    close: OpSlot,
    mdl: Option<OwnedMdl>,
    work_item: OwnedWorkItem,
}

impl WskSocketIo {
    /// Allocates the IRPs a socket of `kind` needs, for connections the MDL over `buffer`, and
    /// the work item (on `driver`). `None` if any allocation fails (everything allocated so far
    /// is freed by drop).
    ///
    /// # Safety
    /// `buffer`, if any, is non-paged memory valid until the returned value is dropped.
    pub unsafe fn allocate(
        kind: SocketKind,
        buffer: Option<NonNull<[u8]>>,
        driver: NonNull<DRIVER_OBJECT>,
    ) -> Option<Self> {
        let (setup, receive, send, disconnect, mdl) = match kind {
            SocketKind::Listener => (Some(OpSlot::allocate()?), None, None, None, None),
            SocketKind::Connection => {
                let buffer = buffer?;
                (
                    None,
                    Some(OpSlot::allocate()?),
                    Some(OpSlot::allocate()?),
                    Some(OpSlot::allocate()?),
                    // SAFETY: the buffer is non-paged and outlives `self` (caller).
                    Some(unsafe { OwnedMdl::for_non_paged(buffer) }?),
                )
            }
        };
        Some(Self {
            setup,
            receive,
            send,
            disconnect,
            close: OpSlot::allocate()?,
            mdl,
            work_item: OwnedWorkItem::allocate(driver)?,
        })
    }

    /// The socket's work item.
    pub const fn work_item(&self) -> &OwnedWorkItem {
        &self.work_item
    }

    /// The slot of `kind`, if this socket has one. A connection's Setup operation
    /// (`TCP_NODELAY`, before its first receive) uses the Disconnect slot: the core makes the
    /// disconnect only once nothing else is outstanding, after the option completed, so the
    /// two never share it at once, and the connection needs no fifth IRP.
    pub const fn slot(&self, kind: OpKind) -> Option<&OpSlot> {
        match kind {
            OpKind::Setup if self.setup.is_none() => self.disconnect.as_ref(),
            OpKind::Setup => self.setup.as_ref(),
            OpKind::Receive => self.receive.as_ref(),
            OpKind::Send => self.send.as_ref(),
            OpKind::Disconnect => self.disconnect.as_ref(),
            OpKind::Close => Some(&self.close),
        }
    }

    /// The MDL over the connection's buffer (connections only).
    pub const fn mdl(&self) -> Option<&OwnedMdl> {
        self.mdl.as_ref()
    }
}
