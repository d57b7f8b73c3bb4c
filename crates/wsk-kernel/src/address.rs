//! Conversions between `core::net::SocketAddr` and the Windows `SOCKADDR_IN`/`SOCKADDR_IN6`.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::ffi::ws2def::{ADDRESS_FAMILY, AF_INET, AF_INET6, SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6};

/// Storage for either address kind, passed to WSK as `PSOCKADDR`. Kept inside a socket's I/O
/// resources so that it stays valid while `WskBind` is outstanding.
#[repr(C)]
#[derive(Clone, Copy)]
pub union SockaddrStorage {
    /// Family-only view.
    pub generic: SOCKADDR,
    /// IPv4.
    pub v4: SOCKADDR_IN,
    /// IPv6.
    pub v6: SOCKADDR_IN6,
}

impl SockaddrStorage {
    /// The Windows form of `address`.
    pub const fn from_socket_addr(address: SocketAddr) -> Self {
        match address {
            SocketAddr::V4(v4) => Self {
                v4: SOCKADDR_IN {
                    sin_family: AF_INET,
                    sin_port: v4.port().to_be(),
                    sin_addr: v4.ip().octets(),
                    sin_zero: [0; 8],
                },
            },
            SocketAddr::V6(v6) => Self {
                v6: SOCKADDR_IN6 {
                    sin6_family: AF_INET6,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo().to_be(),
                    sin6_addr: v6.ip().octets(),
                    sin6_scope_id: v6.scope_id(),
                },
            },
        }
    }
}

/// Reads a `SOCKADDR` that WSK passed in (e.g. the accept event's remote address). `None` for
/// a NULL pointer or a family other than IPv4/IPv6.
///
/// # Safety
/// `address` is NULL or points to a valid `SOCKADDR` of the size its family implies, for the
/// duration of the call.
pub unsafe fn socket_addr_from_raw(address: *const SOCKADDR) -> Option<SocketAddr> {
    if address.is_null() {
        return None;
    }
    // SAFETY: non-NULL and valid (caller); every address starts with its family.
    let family = unsafe { address.cast::<ADDRESS_FAMILY>().read_unaligned() };
    match family {
        AF_INET => {
            // SAFETY: the family says this is a SOCKADDR_IN (caller); read unaligned to make
            // no assumption about WSK's alignment.
            let v4 = unsafe { address.cast::<SOCKADDR_IN>().read_unaligned() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(v4.sin_addr),
                u16::from_be(v4.sin_port),
            )))
        }
        AF_INET6 => {
            // SAFETY: the family says this is a SOCKADDR_IN6 (caller).
            let v6 = unsafe { address.cast::<SOCKADDR_IN6>().read_unaligned() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr),
                u16::from_be(v6.sin6_port),
                u32::from_be(v6.sin6_flowinfo),
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

    use super::{SockaddrStorage, socket_addr_from_raw};
    use crate::ffi::ws2def::SOCKADDR;

    fn raw(storage: &SockaddrStorage) -> *const SOCKADDR {
        core::ptr::from_ref(storage).cast()
    }

    #[test]
    fn ipv4_is_laid_out_in_network_order() {
        let address = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 40007));
        let storage = SockaddrStorage::from_socket_addr(address);
        // SAFETY: the storage was built from an IPv4 address.
        let v4 = unsafe { storage.v4 };
        // SAFETY: SOCKADDR_IN is 16 bytes of plain data, fully initialised.
        let bytes: [u8; 16] = unsafe { core::mem::transmute(v4) };
        assert_eq!(&bytes[..2], &2_u16.to_le_bytes(), "AF_INET, host order");
        assert_eq!(&bytes[2..4], &[0x9C, 0x47], "port 40007, network order");
        assert_eq!(&bytes[4..8], &[192, 0, 2, 1]);
        assert_eq!(&bytes[8..], &[0; 8]);
        // SAFETY: `storage` is a valid SOCKADDR_IN for the call.
        let parsed = unsafe { socket_addr_from_raw(raw(&storage)) };
        assert_eq!(parsed, Some(address));
    }

    #[test]
    fn ipv6_uses_family_23_and_round_trips() {
        let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let address = SocketAddr::V6(SocketAddrV6::new(ip, 7, 0x0001_2345, 3));
        let storage = SockaddrStorage::from_socket_addr(address);
        // SAFETY: reading the family of a fully initialised SOCKADDR_IN6.
        assert_eq!(unsafe { storage.v6.sin6_family }, 23);
        // SAFETY: as above.
        assert_eq!(unsafe { storage.v6.sin6_port }.to_ne_bytes(), [0, 7]);
        // SAFETY: `storage` is a valid SOCKADDR_IN6 for the call.
        let parsed = unsafe { socket_addr_from_raw(raw(&storage)) };
        assert_eq!(parsed, Some(address));
    }

    #[test]
    fn null_and_unknown_families_give_none() {
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { socket_addr_from_raw(core::ptr::null()) }, None);
        let unknown = SOCKADDR {
            sa_family: 17,
            sa_data: [0; 14],
        };
        // SAFETY: a valid SOCKADDR of an unsupported family.
        assert_eq!(unsafe { socket_addr_from_raw(&raw const unknown) }, None);
    }
}
