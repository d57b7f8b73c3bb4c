//! The tokens the client hands its provider: [`SocketRef`] (a socket's completion and socket
//! context) and [`BindingRef`] (the client binding context given to the NMR).
//!
//! A token is an address and nothing more; what may be done with it is defined where its
//! object is (`socket.rs` and `accept.rs`; `binding.rs`). Keeping the types here lets the
//! [`Provider`] trait name them without depending on the sockets and bindings that implement
//! them.
//!
//! [`Provider`]: crate::provider::Provider

use ::core::{ffi::c_void, marker::PhantomData, ptr::NonNull};

/// Defines a token type: `Copy`, comparable, printable, sendable, convertible to and from a
/// context pointer.
macro_rules! token {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<P> {
            ptr: NonNull<c_void>,
            _provider: PhantomData<fn() -> P>,
        }

        impl<P> Clone for $name<P> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<P> Copy for $name<P> {}

        impl<P> ::core::fmt::Debug for $name<P> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, concat!(stringify!($name), "({:p})"), self.ptr)
            }
        }

        impl<P> PartialEq for $name<P> {
            fn eq(&self, other: &Self) -> bool {
                self.ptr == other.ptr
            }
        }
        impl<P> Eq for $name<P> {}

        // SAFETY: a token is an address; every use goes through its object's serializer and
        // atomics, which are built for calls from any thread (provider.rs: completions and
        // NMR callbacks come on any thread).
        unsafe impl<P> Send for $name<P> {}
        // SAFETY: as above.
        unsafe impl<P> Sync for $name<P> {}

        impl<P> $name<P> {
            /// The token of the object at `ptr`.
            pub(crate) const fn from_ptr<T>(ptr: NonNull<T>) -> Self {
                Self {
                    ptr: ptr.cast(),
                    _provider: PhantomData,
                }
            }

            /// The object's address, as the type its module knows it by.
            pub(crate) const fn ptr<T>(self) -> NonNull<T> {
                self.ptr.cast()
            }

            /// The token as a context pointer.
            #[must_use]
            pub const fn as_context(self) -> *mut c_void {
                self.ptr.as_ptr()
            }

            /// The token back from a context pointer. A null pointer gives a dangling token,
            /// which must not be used (the safety contract excludes it).
            ///
            /// # Safety
            /// `context` came from `as_context` of a token whose object may still be used (its
            /// module's documentation says until when).
            #[must_use]
            pub unsafe fn from_context(context: *mut c_void) -> Self {
                Self::from_ptr(NonNull::new(context).unwrap_or(NonNull::dangling()))
            }
        }
    };
}

token!(
    /// Token for one socket, passed to the provider as its completion / socket context (what
    /// it allows: `socket.rs`, `accept.rs`).
    ///
    /// It may be used from any thread (`Send + Sync`): the socket synchronizes internally.
    SocketRef
);

token!(
    /// Token for one binding: the client binding context given to the NMR (what it allows:
    /// `binding.rs`).
    BindingRef
);
