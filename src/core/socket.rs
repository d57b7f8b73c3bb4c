//! Sockets: listener and connection state machines. (Placeholder: being written.)

use ::core::{marker::PhantomData, ptr::NonNull};

use crate::core::provider::Provider;

/// Token for one core socket, passed to the provider as its completion / socket context.
pub struct SocketRef<P: Provider> {
    ptr: NonNull<()>,
    _provider: PhantomData<fn() -> P>,
}

impl<P: Provider> Clone for SocketRef<P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P: Provider> Copy for SocketRef<P> {}

impl<P: Provider> SocketRef<P> {
    /// The token as a context pointer.
    #[must_use]
    pub const fn as_context(self) -> *mut ::core::ffi::c_void {
        self.ptr.as_ptr().cast()
    }
}
