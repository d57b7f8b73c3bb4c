//! Winsock Kernel (WSK): the parts of `wsk.h` the adapter uses.
//!
//! Reference: <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/>. All WSK
//! functions and callbacks use `WSKAPI` = `NTAPI` (`extern "system"`). Numeric values the
//! reference pages do not spell out (the control code, the event bits) are those of the WDK's
//! `wsk.h`, cross-checked against the independent `ReactOS` header `include/ddk/wsk.h`.

use core::{
    ffi::c_void,
    mem::{offset_of, size_of},
};

use wdk_sys::{
    GUID, NTSTATUS, PEPROCESS, PETHREAD, PIRP, PMDL, PSECURITY_DESCRIPTOR, PVOID, SIZE_T, ULONG,
    USHORT,
};

use super::{
    netioddk::NPIID,
    ws2def::{ADDRESS_FAMILY, SOCKADDR},
};

/// `NPI_WSK_INTERFACE_ID` = `{2227E803-8D8B-11D4-ABAD-009027719E09}`: the NPI a WSK client
/// registers for with `NmrRegisterClient`.
///
/// Declared `extern CONST NPIID` in `wsk.h` and supplied by the WDK's static libraries, not
/// exported by `netio.sys`, so the adapter defines it. Use described in "Using NMR for WSK
/// Registration and Unregistration":
/// <https://learn.microsoft.com/windows-hardware/drivers/network/using-nmr-for-wsk-registration-and-unregistration>.
/// In memory (little-endian `Data1..3`): `03 E8 27 22 8B 8D D4 11 AB AD 00 90 27 71 9E 09`.
pub const NPI_WSK_INTERFACE_ID: NPIID = GUID {
    Data1: 0x2227_E803,
    Data2: 0x8D8B,
    Data3: 0x11D4,
    Data4: [0xAB, 0xAD, 0x00, 0x90, 0x27, 0x71, 0x9E, 0x09],
};

/// The in-memory bytes of [`NPI_WSK_INTERFACE_ID`], as a PE checker finds them in the image.
pub const NPI_WSK_INTERFACE_ID_BYTES: [u8; 16] = [
    0x03, 0xE8, 0x27, 0x22, 0x8B, 0x8D, 0xD4, 0x11, 0xAB, 0xAD, 0x00, 0x90, 0x27, 0x71, 0x9E, 0x09,
];

/// `MAKE_WSK_VERSION(Mj, Mn)` = `(Mj << 8) | Mn`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_client_dispatch>
/// (the `Version` member) and `wsk.h`.
#[must_use]
pub const fn MAKE_WSK_VERSION(major: u8, minor: u8) -> USHORT {
    ((major as USHORT) << 8) | minor as USHORT
}

/// `WSK_SET_STATIC_EVENT_CALLBACKS` (7): `WskControlClient` code enabling event callbacks on
/// every socket created afterwards; `Irp` must be `NULL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/network/wsk-set-static-event-callbacks>
pub const WSK_SET_STATIC_EVENT_CALLBACKS: ULONG = 7;

/// `WSK_EVENT_ACCEPT` (0x200): `WskAcceptEvent` on listening sockets.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/network/so-wsk-event-callback>
pub const WSK_EVENT_ACCEPT: ULONG = 0x0000_0200;
/// `WSK_EVENT_RECEIVE` (0x40): `WskReceiveEvent` on connection sockets (not used by the adapter).
///
/// <https://learn.microsoft.com/windows-hardware/drivers/network/so-wsk-event-callback>
pub const WSK_EVENT_RECEIVE: ULONG = 0x0000_0040;
/// `WSK_EVENT_DISCONNECT` (0x80): `WskDisconnectEvent` (not used by the adapter). Not the accept
/// bit.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/network/so-wsk-event-callback>
pub const WSK_EVENT_DISCONNECT: ULONG = 0x0000_0080;

/// `WSK_FLAG_LISTEN_SOCKET` (1): `WskSocket` creates a listening socket.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_socket>
pub const WSK_FLAG_LISTEN_SOCKET: ULONG = 0x0000_0001;
/// `WSK_FLAG_CONNECTION_SOCKET` (2): `WskSocket` creates a connection-oriented socket.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_socket>
pub const WSK_FLAG_CONNECTION_SOCKET: ULONG = 0x0000_0002;

/// `PWSK_CLIENT` (`typedef PVOID PWSK_CLIENT`): the provider binding context WSK returns
/// through `NmrClientAttachProvider`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_provider_npi>
pub type PWSK_CLIENT = PVOID;

/// `WSK_SOCKET`: a socket object; `Dispatch` points to the provider dispatch table of the
/// socket's category (`WSK_PROVIDER_LISTEN_DISPATCH`, `..._CONNECTION_DISPATCH`, ...).
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_socket>
#[repr(C)]
pub struct WSK_SOCKET {
    /// The socket's provider dispatch table.
    pub Dispatch: *const c_void,
}

/// `PWSK_SOCKET`.
pub type PWSK_SOCKET = *mut WSK_SOCKET;

/// `WSK_BUF`: a range of an MDL chain. `Offset + Length` must lie within the MDL chain.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_buf>
#[repr(C)]
pub struct WSK_BUF {
    /// The first MDL of the chain.
    pub Mdl: PMDL,
    /// Byte offset into the first MDL's buffer.
    pub Offset: ULONG,
    /// Bytes in the range.
    pub Length: SIZE_T,
}

/// `WSK_PROVIDER_CHARACTERISTICS`: the WSK versions a provider supports; found at
/// `NPI_REGISTRATION_INSTANCE.NpiSpecificCharacteristics` of the provider in
/// `ClientAttachProvider`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_provider_characteristics>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct WSK_PROVIDER_CHARACTERISTICS {
    /// Highest supported version (`MAKE_WSK_VERSION` encoding).
    pub HighestVersion: USHORT,
    /// Lowest supported version.
    pub LowestVersion: USHORT,
}

/// `WSK_EVENT_CALLBACK_CONTROL`: input of [`WSK_SET_STATIC_EVENT_CALLBACKS`].
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_event_callback_control>
#[repr(C)]
pub struct WSK_EVENT_CALLBACK_CONTROL {
    /// `&NPI_WSK_INTERFACE_ID`.
    pub NpiId: *const NPIID,
    /// `WSK_EVENT_*` bits.
    pub EventMask: ULONG,
}

/// `PFN_WSK_CLIENT_EVENT` (`WskClientEvent`); the adapter registers none.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_client_event>
pub type PFN_WSK_CLIENT_EVENT = unsafe extern "system" fn(
    ClientContext: PVOID,
    EventType: ULONG,
    Information: PVOID,
    InformationLength: SIZE_T,
) -> NTSTATUS;

/// `WSK_CLIENT_DISPATCH`: the client dispatch passed to `NmrClientAttachProvider`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_client_dispatch>
#[repr(C)]
pub struct WSK_CLIENT_DISPATCH {
    /// WSK version the client requests (`MAKE_WSK_VERSION(1, 0)`).
    pub Version: USHORT,
    /// Reserved: 0.
    pub Reserved: USHORT,
    /// Optional; `None` (no client events are defined).
    pub WskClientEvent: Option<PFN_WSK_CLIENT_EVENT>,
}

/// `WSK_CLIENT_CONNECTION_DISPATCH`: the adapter uses no connection events and only ever passes a
/// `NULL` pointer to this type, so its three callbacks are kept opaque.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_client_connection_dispatch>
#[repr(C)]
pub struct WSK_CLIENT_CONNECTION_DISPATCH {
    /// `PFN_WSK_RECEIVE_EVENT` (opaque here).
    pub WskReceiveEvent: *const c_void,
    /// `PFN_WSK_DISCONNECT_EVENT` (opaque here).
    pub WskDisconnectEvent: *const c_void,
    /// `PFN_WSK_SEND_BACKLOG_EVENT` (opaque here).
    pub WskSendBacklogEvent: *const c_void,
}

/// `PFN_WSK_ACCEPT_EVENT` (`WskAcceptEvent`), called at IRQL <= `DISPATCH_LEVEL`. A `NULL`
/// `AcceptSocket` means the listening socket stopped working. The address pointers are valid
/// only during the call.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_accept_event>
pub type PFN_WSK_ACCEPT_EVENT = unsafe extern "system" fn(
    SocketContext: PVOID,
    Flags: ULONG,
    LocalAddress: *mut SOCKADDR,
    RemoteAddress: *mut SOCKADDR,
    AcceptSocket: PWSK_SOCKET,
    AcceptSocketContext: *mut PVOID,
    AcceptSocketDispatch: *mut *const WSK_CLIENT_CONNECTION_DISPATCH,
) -> NTSTATUS;

/// `WSK_CLIENT_LISTEN_DISPATCH`: the client dispatch of a listening socket (passed to
/// `WskSocket`).
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_client_listen_dispatch>
#[repr(C)]
pub struct WSK_CLIENT_LISTEN_DISPATCH {
    /// Required when `WSK_EVENT_ACCEPT` is enabled.
    pub WskAcceptEvent: Option<PFN_WSK_ACCEPT_EVENT>,
    /// `PFN_WSK_INSPECT_EVENT`: only for conditional accept; `NULL` here.
    pub WskInspectEvent: *const c_void,
    /// `PFN_WSK_ABORT_EVENT`: only for conditional accept; `NULL` here.
    pub WskAbortEvent: *const c_void,
}

// SAFETY: the two raw pointers are always NULL in the adapter's (immutable, static) table; the
// table is only read, by WSK, from any thread.
unsafe impl Sync for WSK_CLIENT_LISTEN_DISPATCH {}

/// `PFN_WSK_SOCKET` (`WskSocket`), IRQL <= `DISPATCH_LEVEL`. On success
/// `Irp->IoStatus.Information` holds the new `PWSK_SOCKET`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_socket>
pub type PFN_WSK_SOCKET = unsafe extern "system" fn(
    Client: PWSK_CLIENT,
    AddressFamily: ADDRESS_FAMILY,
    SocketType: USHORT,
    Protocol: ULONG,
    Flags: ULONG,
    SocketContext: PVOID,
    Dispatch: *const c_void,
    OwningProcess: PEPROCESS,
    OwningThread: PETHREAD,
    SecurityDescriptor: PSECURITY_DESCRIPTOR,
    Irp: PIRP,
) -> NTSTATUS;

/// `PFN_WSK_CONTROL_CLIENT` (`WskControlClient`).
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_control_client>
pub type PFN_WSK_CONTROL_CLIENT = unsafe extern "system" fn(
    Client: PWSK_CLIENT,
    ControlCode: ULONG,
    InputSize: SIZE_T,
    InputBuffer: PVOID,
    OutputSize: SIZE_T,
    OutputBuffer: PVOID,
    OutputSizeReturned: *mut SIZE_T,
    Irp: PIRP,
) -> NTSTATUS;

/// `WSK_PROVIDER_DISPATCH`: returned by `NmrClientAttachProvider`. The leading
/// `Version`/`Reserved` pair is part of the layout.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_provider_dispatch>
#[repr(C)]
pub struct WSK_PROVIDER_DISPATCH {
    /// WSK version of the provider.
    pub Version: USHORT,
    /// Reserved.
    pub Reserved: USHORT,
    /// `WskSocket`.
    pub WskSocket: Option<PFN_WSK_SOCKET>,
    /// `PFN_WSK_SOCKET_CONNECT` (opaque here).
    pub WskSocketConnect: *const c_void,
    /// `WskControlClient`.
    pub WskControlClient: Option<PFN_WSK_CONTROL_CLIENT>,
    /// `PFN_WSK_GET_ADDRESS_INFO` (opaque here).
    pub WskGetAddressInfo: *const c_void,
    /// `PFN_WSK_FREE_ADDRESS_INFO` (opaque here).
    pub WskFreeAddressInfo: *const c_void,
    /// `PFN_WSK_GET_NAME_INFO` (opaque here).
    pub WskGetNameInfo: *const c_void,
}

/// `PFN_WSK_CLOSE_SOCKET` (`WskCloseSocket`), IRQL <= `DISPATCH_LEVEL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_close_socket>
pub type PFN_WSK_CLOSE_SOCKET =
    unsafe extern "system" fn(Socket: PWSK_SOCKET, Irp: PIRP) -> NTSTATUS;

/// `WSK_CONTROL_SOCKET_TYPE`: the kind of a `WskControlSocket` request (a C enum: `int`).
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_control_socket>
pub type WSK_CONTROL_SOCKET_TYPE = i32;

/// `WskSetOption`: the first `WSK_CONTROL_SOCKET_TYPE` value (then `WskGetOption`, `WskIoctl`).
#[allow(non_upper_case_globals)] // the C enumerator's name
pub const WskSetOption: WSK_CONTROL_SOCKET_TYPE = 0;

/// `PFN_WSK_CONTROL_SOCKET` (`WskControlSocket`), IRQL <= `DISPATCH_LEVEL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_control_socket>
pub type PFN_WSK_CONTROL_SOCKET = unsafe extern "system" fn(
    Socket: PWSK_SOCKET,
    RequestType: WSK_CONTROL_SOCKET_TYPE,
    ControlCode: ULONG,
    Level: ULONG,
    InputSize: SIZE_T,
    InputBuffer: PVOID,
    OutputSize: SIZE_T,
    OutputBuffer: PVOID,
    OutputSizeReturned: *mut SIZE_T,
    Irp: PIRP,
) -> NTSTATUS;

/// `WSK_PROVIDER_BASIC_DISPATCH`: the functions every socket category starts with.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_provider_basic_dispatch>
#[repr(C)]
pub struct WSK_PROVIDER_BASIC_DISPATCH {
    /// `WskControlSocket`.
    pub WskControlSocket: Option<PFN_WSK_CONTROL_SOCKET>,
    /// `WskCloseSocket`.
    pub WskCloseSocket: Option<PFN_WSK_CLOSE_SOCKET>,
}

/// `PFN_WSK_BIND` (`WskBind`), IRQL <= `DISPATCH_LEVEL`. A listening socket listens once bound.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_bind>
pub type PFN_WSK_BIND = unsafe extern "system" fn(
    Socket: PWSK_SOCKET,
    LocalAddress: *mut SOCKADDR,
    Flags: ULONG,
    Irp: PIRP,
) -> NTSTATUS;

/// `WSK_PROVIDER_LISTEN_DISPATCH`: `WSK_SOCKET.Dispatch` of a listening socket.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_provider_listen_dispatch>
#[repr(C)]
pub struct WSK_PROVIDER_LISTEN_DISPATCH {
    /// The basic functions (an anonymous member in C).
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// `WskBind`.
    pub WskBind: Option<PFN_WSK_BIND>,
    /// `PFN_WSK_ACCEPT` (opaque here: the adapter accepts through the accept event only).
    pub WskAccept: *const c_void,
    /// `PFN_WSK_INSPECT_COMPLETE` (opaque here).
    pub WskInspectComplete: *const c_void,
    /// `PFN_WSK_GET_LOCAL_ADDRESS` (opaque here).
    pub WskGetLocalAddress: *const c_void,
}

/// `PFN_WSK_SEND` (`WskSend`), IRQL <= `DISPATCH_LEVEL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_send>
pub type PFN_WSK_SEND = unsafe extern "system" fn(
    Socket: PWSK_SOCKET,
    Buffer: *mut WSK_BUF,
    Flags: ULONG,
    Irp: PIRP,
) -> NTSTATUS;

/// `PFN_WSK_RECEIVE` (`WskReceive`), IRQL <= `DISPATCH_LEVEL`. Completes with 0 bytes when the
/// peer gracefully closed its side.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_receive>
pub type PFN_WSK_RECEIVE = unsafe extern "system" fn(
    Socket: PWSK_SOCKET,
    Buffer: *mut WSK_BUF,
    Flags: ULONG,
    Irp: PIRP,
) -> NTSTATUS;

/// `PFN_WSK_DISCONNECT` (`WskDisconnect`), IRQL <= `DISPATCH_LEVEL`. `Buffer` may be `NULL`;
/// `Flags` 0 is a graceful disconnect.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_disconnect>
pub type PFN_WSK_DISCONNECT = unsafe extern "system" fn(
    Socket: PWSK_SOCKET,
    Buffer: *mut WSK_BUF,
    Flags: ULONG,
    Irp: PIRP,
) -> NTSTATUS;

/// `WSK_PROVIDER_CONNECTION_DISPATCH`: `WSK_SOCKET.Dispatch` of a connection socket.
///
/// Newer Windows versions append `WskConnectEx`, `WskSendEx`, `WskReceiveEx`; the adapter only
/// reads this table through a pointer, so declaring the documented common prefix is sufficient.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/ns-wsk-_wsk_provider_connection_dispatch>
#[repr(C)]
pub struct WSK_PROVIDER_CONNECTION_DISPATCH {
    /// The basic functions (an anonymous member in C).
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// `PFN_WSK_BIND` (opaque here).
    pub WskBind: *const c_void,
    /// `PFN_WSK_CONNECT` (opaque here).
    pub WskConnect: *const c_void,
    /// `PFN_WSK_GET_LOCAL_ADDRESS` (opaque here).
    pub WskGetLocalAddress: *const c_void,
    /// `PFN_WSK_GET_REMOTE_ADDRESS` (opaque here).
    pub WskGetRemoteAddress: *const c_void,
    /// `WskSend`.
    pub WskSend: Option<PFN_WSK_SEND>,
    /// `WskReceive`.
    pub WskReceive: Option<PFN_WSK_RECEIVE>,
    /// `WskDisconnect`.
    pub WskDisconnect: Option<PFN_WSK_DISCONNECT>,
    /// `PFN_WSK_RELEASE_DATA_INDICATION_LIST` (opaque here).
    pub WskRelease: *const c_void,
}

// The accept bit is its own (one published port used 0x80, which is DISCONNECT), and the two
// socket categories the adapter knows are distinct flags.
const _: () = assert!(WSK_EVENT_ACCEPT.is_power_of_two());
const _: () = assert!(WSK_EVENT_ACCEPT & (WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT) == 0);
const _: () = assert!(WSK_FLAG_LISTEN_SOCKET & WSK_FLAG_CONNECTION_SOCKET == 0);

// x64 layouts (pointers 8 bytes, natural alignment).
const _: () = assert!(MAKE_WSK_VERSION(1, 0) == 0x0100);
const _: () = assert!(size_of::<WSK_SOCKET>() == 8);
const _: () = assert!(size_of::<WSK_BUF>() == 24);
const _: () = assert!(offset_of!(WSK_BUF, Mdl) == 0);
const _: () = assert!(offset_of!(WSK_BUF, Offset) == 8);
const _: () = assert!(offset_of!(WSK_BUF, Length) == 16);
const _: () = assert!(size_of::<WSK_PROVIDER_CHARACTERISTICS>() == 4);
const _: () = assert!(offset_of!(WSK_PROVIDER_CHARACTERISTICS, HighestVersion) == 0);
const _: () = assert!(offset_of!(WSK_PROVIDER_CHARACTERISTICS, LowestVersion) == 2);
const _: () = assert!(size_of::<WSK_EVENT_CALLBACK_CONTROL>() == 16);
const _: () = assert!(offset_of!(WSK_EVENT_CALLBACK_CONTROL, NpiId) == 0);
const _: () = assert!(offset_of!(WSK_EVENT_CALLBACK_CONTROL, EventMask) == 8);
const _: () = assert!(size_of::<WSK_CLIENT_DISPATCH>() == 16);
const _: () = assert!(offset_of!(WSK_CLIENT_DISPATCH, Version) == 0);
const _: () = assert!(offset_of!(WSK_CLIENT_DISPATCH, Reserved) == 2);
const _: () = assert!(offset_of!(WSK_CLIENT_DISPATCH, WskClientEvent) == 8);
const _: () = assert!(size_of::<WSK_CLIENT_CONNECTION_DISPATCH>() == 24);
const _: () = assert!(size_of::<WSK_CLIENT_LISTEN_DISPATCH>() == 24);
const _: () = assert!(offset_of!(WSK_CLIENT_LISTEN_DISPATCH, WskAcceptEvent) == 0);
const _: () = assert!(offset_of!(WSK_CLIENT_LISTEN_DISPATCH, WskInspectEvent) == 8);
const _: () = assert!(offset_of!(WSK_CLIENT_LISTEN_DISPATCH, WskAbortEvent) == 16);
const _: () = assert!(size_of::<WSK_PROVIDER_DISPATCH>() == 56);
const _: () = assert!(offset_of!(WSK_PROVIDER_DISPATCH, Version) == 0);
const _: () = assert!(offset_of!(WSK_PROVIDER_DISPATCH, Reserved) == 2);
const _: () = assert!(offset_of!(WSK_PROVIDER_DISPATCH, WskSocket) == 8);
const _: () = assert!(offset_of!(WSK_PROVIDER_DISPATCH, WskSocketConnect) == 16);
const _: () = assert!(offset_of!(WSK_PROVIDER_DISPATCH, WskControlClient) == 24);
const _: () = assert!(offset_of!(WSK_PROVIDER_DISPATCH, WskGetAddressInfo) == 32);
const _: () = assert!(offset_of!(WSK_PROVIDER_DISPATCH, WskFreeAddressInfo) == 40);
const _: () = assert!(offset_of!(WSK_PROVIDER_DISPATCH, WskGetNameInfo) == 48);
const _: () = assert!(size_of::<WSK_PROVIDER_BASIC_DISPATCH>() == 16);
const _: () = assert!(offset_of!(WSK_PROVIDER_BASIC_DISPATCH, WskControlSocket) == 0);
const _: () = assert!(offset_of!(WSK_PROVIDER_BASIC_DISPATCH, WskCloseSocket) == 8);
const _: () = assert!(size_of::<WSK_PROVIDER_LISTEN_DISPATCH>() == 48);
const _: () = assert!(offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskBind) == 16);
const _: () = assert!(offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskAccept) == 24);
const _: () = assert!(offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskInspectComplete) == 32);
const _: () = assert!(offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskGetLocalAddress) == 40);
const _: () = assert!(size_of::<WSK_PROVIDER_CONNECTION_DISPATCH>() == 80);
const _: () = assert!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskBind) == 16);
const _: () = assert!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskConnect) == 24);
const _: () = assert!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskGetLocalAddress) == 32);
const _: () = assert!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskGetRemoteAddress) == 40);
const _: () = assert!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskSend) == 48);
const _: () = assert!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskReceive) == 56);
const _: () = assert!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskDisconnect) == 64);
const _: () = assert!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskRelease) == 72);

/// The GUID constant and its byte form agree (checks `Data1..3` are stored little-endian).
const _: () = {
    let g = NPI_WSK_INTERFACE_ID;
    let d1 = g.Data1.to_le_bytes();
    let d2 = g.Data2.to_le_bytes();
    let d3 = g.Data3.to_le_bytes();
    let b = NPI_WSK_INTERFACE_ID_BYTES;
    assert!(d1[0] == b[0] && d1[1] == b[1] && d1[2] == b[2] && d1[3] == b[3]);
    assert!(d2[0] == b[4] && d2[1] == b[5] && d3[0] == b[6] && d3[1] == b[7]);
    let mut i = 0;
    while i < 8 {
        assert!(g.Data4[i] == b[8 + i]);
        i += 1;
    }
};
