//! [`WskSocketHandle`], a WSK socket as the client holds it.

use core::{fmt, ptr::NonNull};

use crate::ffi::wsk::WSK_SOCKET;
#[cfg(doc)]
use wsk_client::provider::Provider;

/// A `PWSK_SOCKET` ([`Provider::Socket`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WskSocketHandle(pub NonNull<WSK_SOCKET>);

// SAFETY: a WSK socket handle may be used from any thread; the core serialises the calls.
unsafe impl Send for WskSocketHandle {}
// SAFETY: as above.
unsafe impl Sync for WskSocketHandle {}

impl fmt::Debug for WskSocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WskSocket({:p})", self.0)
    }
}

impl WskSocketHandle {
    /// The socket's provider dispatch table, as a pointer to the table type `T` of its category
    /// (NULL if WSK gave none). Read its entries with `dispatch_entry!` (`provider.rs`), never
    /// through a reference: a provider of an older WSK version may hand out a shorter table.
    ///
    /// # Safety
    /// The socket is open (its close has not completed).
    pub(crate) const unsafe fn dispatch<T>(self) -> *const T {
        // SAFETY: an open WSK socket is valid to read (caller); `Dispatch` is its only field.
        unsafe { self.0.cast::<*const T>().read() }
    }
}
