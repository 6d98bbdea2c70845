//! The byte streams the traits pass around.

use futures::io::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::pin::Pin;

/// A bidirectional byte stream: anything that is futures-io `AsyncRead + AsyncWrite`.
///
/// Blanket-implemented, so a TCP stream (through `tokio-util`'s compat layer), an
/// in-memory duplex or an encrypted channel all fit.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// An owned, type-erased [`Io`].
pub type BoxedIo = Box<dyn Io>;

/// A boxed, sendable future, as returned by the dyn-compatible traits of this crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
