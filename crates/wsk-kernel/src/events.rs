//! WSK event callbacks of listening sockets: `WskAcceptEvent`, and the static client listen
//! dispatch table passed to `WskSocket`.

use core::ptr::{self, NonNull};

use wdk_sys::{NTSTATUS, PVOID, STATUS_SUCCESS, ULONG};

use crate::ffi::{
    ws2def::SOCKADDR,
    wsk::{PWSK_SOCKET, WSK_CLIENT_CONNECTION_DISPATCH, WSK_CLIENT_LISTEN_DISPATCH},
};
use crate::{address::socket_addr_from_raw, socket_handle::WskSocketHandle};
use wsk_client::{provider::Provider, socket::SocketRef};
use wsk_primitives::status::NtStatus;

/// The client dispatch of every listening socket of provider type `P`: accept events only, no
/// conditional accept. For a static: WSK reads it for as long as the socket exists.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_client_listen_dispatch>
pub const fn listen_dispatch<P: Provider<Socket = WskSocketHandle>>() -> WSK_CLIENT_LISTEN_DISPATCH
{
    WSK_CLIENT_LISTEN_DISPATCH {
        WskAcceptEvent: Some(accept_event::<P>),
        WskInspectEvent: ptr::null(),
        WskAbortEvent: ptr::null(),
    }
}

/// `WskAcceptEvent` (`PFN_WSK_ACCEPT_EVENT`), IRQL <= `DISPATCH_LEVEL`
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_accept_event>).
///
/// Hands the new connection (or, with a NULL `accept_socket`, the news that the listener stopped
/// working) to the core. On acceptance it writes `*AcceptSocketContext` = NULL and
/// `*AcceptSocketDispatch` = NULL (the page: NULL when the application enables no event callback on
/// the accepted socket, as the adapter does), then starts the connection (queues its work item,
/// which makes its first I/O), then returns `STATUS_SUCCESS`; otherwise
/// `STATUS_REQUEST_NOT_ACCEPTED`, the only other status the page allows (WSK then closes the
/// socket). The remote address is read only with a socket, and only during the call.
unsafe extern "system" fn accept_event<P: Provider<Socket = WskSocketHandle>>(
    socket_context: PVOID,
    _flags: ULONG,
    _local_address: *mut SOCKADDR,
    remote_address: *mut SOCKADDR,
    accept_socket: PWSK_SOCKET,
    accept_socket_context: *mut PVOID,
    accept_socket_dispatch: *mut *const WSK_CLIENT_CONNECTION_DISPATCH,
) -> NTSTATUS {
    if socket_context.is_null() {
        return NtStatus::REQUEST_NOT_ACCEPTED.0;
    }
    // SAFETY: the socket context of a listener is the token the core gave `open_listener`,
    // valid until the listener's close completes (WSK calls no event after that).
    let listener = unsafe { SocketRef::<P>::from_context(socket_context) };
    let accepted = NonNull::new(accept_socket).map(WskSocketHandle);
    let remote = if accepted.is_some() {
        // SAFETY: with a socket, WSK passes a valid remote address for this call's duration.
        unsafe { socket_addr_from_raw(remote_address) }
    } else {
        None
    };
    // SAFETY: called from the listener's accept event, as the core requires.
    let Ok(connection) = (unsafe { listener.accept_event(accepted, remote) }) else {
        return NtStatus::REQUEST_NOT_ACCEPTED.0;
    };
    // NULL out-pointers are not expected from WSK; the connection is taken, started and served
    // as usual either way.
    if !accept_socket_context.is_null() {
        // SAFETY: valid for writes during the call (checked for NULL).
        unsafe { accept_socket_context.write(ptr::null_mut()) };
    }
    if !accept_socket_dispatch.is_null() {
        // SAFETY: as above.
        unsafe { accept_socket_dispatch.write(ptr::null()) };
    }
    connection.start();
    STATUS_SUCCESS
}
