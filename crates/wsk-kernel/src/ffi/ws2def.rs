//! Socket address types and constants from `ws2def.h` / `ws2ipdef.h`, as WSK uses them.
//!
//! Windows values differ from other systems' (notably `AF_INET6` is 23). Ports and IPv4/IPv6
//! addresses are stored in network byte order, as in the C structures.

use core::mem::{align_of, offset_of, size_of};

// `USHORT` / `ULONG` spelled as Rust types: this file has no wdk-sys dependency, so the host
// unit tests of the address conversions (`address.rs`) can use it too.
/// `USHORT`.
type USHORT = u16;
/// `ULONG`.
type ULONG = u32;

/// `ADDRESS_FAMILY` (`typedef USHORT ADDRESS_FAMILY`).
///
/// <https://learn.microsoft.com/windows/win32/api/ws2def/ns-ws2def-sockaddr>
pub type ADDRESS_FAMILY = USHORT;

/// `AF_INET` (IPv4).
///
/// <https://learn.microsoft.com/windows/win32/api/ws2def/ns-ws2def-sockaddr_in>
pub const AF_INET: ADDRESS_FAMILY = 2;

/// `AF_INET6` (IPv6) — 23 on Windows.
///
/// <https://learn.microsoft.com/windows/win32/api/ws2ipdef/ns-ws2ipdef-sockaddr_in6_lh>
/// and the `AF_INET6` entry of <https://learn.microsoft.com/windows/win32/api/winsock2/nf-winsock2-socket>.
pub const AF_INET6: ADDRESS_FAMILY = 23;

/// `SOCK_STREAM` (passed to `WskSocket` as its `USHORT SocketType`).
///
/// <https://learn.microsoft.com/windows/win32/api/winsock2/nf-winsock2-socket>
pub const SOCK_STREAM: USHORT = 1;

/// `IPPROTO_TCP` (passed to `WskSocket` as its `ULONG Protocol`).
///
/// <https://learn.microsoft.com/windows/win32/api/winsock2/nf-winsock2-socket>
pub const IPPROTO_TCP: ULONG = 6;

/// `IPPROTO_IPV6`: the option level of `IPV6_V6ONLY` (`WskControlSocket`'s `Level`).
///
/// <https://learn.microsoft.com/windows/win32/winsock/ipproto-ipv6-socket-options>
pub const IPPROTO_IPV6: ULONG = 41;

/// `IPV6_V6ONLY` (`ws2ipdef.h`): a nonzero `DWORD` makes an IPv6 socket accept IPv6 only.
///
/// <https://learn.microsoft.com/windows/win32/winsock/ipproto-ipv6-socket-options>
pub const IPV6_V6ONLY: ULONG = 27;

/// `TCP_NODELAY` (`ws2def.h`, level `IPPROTO_TCP`): a nonzero `DWORD` turns Nagle's algorithm
/// off.
///
/// <https://learn.microsoft.com/windows/win32/winsock/ipproto-tcp-socket-options>
pub const TCP_NODELAY: ULONG = 1;

/// `SOCKADDR`: the generic header every address starts with; WSK passes `PSOCKADDR`.
///
/// <https://learn.microsoft.com/windows/win32/api/ws2def/ns-ws2def-sockaddr>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SOCKADDR {
    /// The address family: selects the real structure.
    pub sa_family: ADDRESS_FAMILY,
    /// Family-specific data.
    pub sa_data: [u8; 14],
}

/// `SOCKADDR_IN`: an IPv4 transport address. `sin_addr` (`IN_ADDR`, a union whose largest
/// member is a `ULONG`) is kept as its four bytes in network order, with the union's 4-byte
/// alignment.
///
/// <https://learn.microsoft.com/windows/win32/api/ws2def/ns-ws2def-sockaddr_in>
#[repr(C, align(4))]
#[derive(Clone, Copy)]
pub struct SOCKADDR_IN {
    /// [`AF_INET`].
    pub sin_family: ADDRESS_FAMILY,
    /// Port, network byte order.
    pub sin_port: USHORT,
    /// `IN_ADDR`, network byte order.
    pub sin_addr: [u8; 4],
    /// Zero.
    pub sin_zero: [u8; 8],
}

/// `SOCKADDR_IN6` (`SOCKADDR_IN6_LH`): an IPv6 transport address. `sin6_scope_id` is the
/// `ULONG` member of its union with `SCOPE_ID`.
///
/// <https://learn.microsoft.com/windows/win32/api/ws2ipdef/ns-ws2ipdef-sockaddr_in6_lh>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SOCKADDR_IN6 {
    /// [`AF_INET6`].
    pub sin6_family: ADDRESS_FAMILY,
    /// Port, network byte order.
    pub sin6_port: USHORT,
    /// Flow information, network byte order.
    pub sin6_flowinfo: ULONG,
    /// `IN6_ADDR`, network byte order.
    pub sin6_addr: [u8; 16],
    /// Scope id (host byte order).
    pub sin6_scope_id: ULONG,
}

const _: () = assert!(size_of::<SOCKADDR>() == 16 && offset_of!(SOCKADDR, sa_data) == 2);
const _: () = assert!(size_of::<SOCKADDR_IN>() == 16 && align_of::<SOCKADDR_IN>() == 4);
const _: () = assert!(offset_of!(SOCKADDR_IN, sin_family) == 0);
const _: () = assert!(offset_of!(SOCKADDR_IN, sin_port) == 2);
const _: () = assert!(offset_of!(SOCKADDR_IN, sin_addr) == 4);
const _: () = assert!(offset_of!(SOCKADDR_IN, sin_zero) == 8);
const _: () = assert!(size_of::<SOCKADDR_IN6>() == 28 && align_of::<SOCKADDR_IN6>() == 4);
const _: () = assert!(offset_of!(SOCKADDR_IN6, sin6_family) == 0);
const _: () = assert!(offset_of!(SOCKADDR_IN6, sin6_port) == 2);
const _: () = assert!(offset_of!(SOCKADDR_IN6, sin6_flowinfo) == 4);
const _: () = assert!(offset_of!(SOCKADDR_IN6, sin6_addr) == 8);
const _: () = assert!(offset_of!(SOCKADDR_IN6, sin6_scope_id) == 24);
