//! A listener whose accept fails (EMFILE and the like) backs off and keeps accepting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weft_host::transport::memory::MemoryTransport;
use weft_host::transport::{Listener, Transport, TransportDialOpts, TransportError, Transported};
use weft_host::{Host, Multiaddr, Protocol};

/// The memory transport, whose listeners fail their first `failures` accepts with
/// EMFILE ("too many open files").
struct Flaky {
    inner: MemoryTransport,
    failures: usize,
    failed: Arc<AtomicUsize>,
}

struct FlakyListener {
    inner: Box<dyn Listener>,
    failures: usize,
    failed: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Listener for FlakyListener {
    fn local_addrs(&self) -> Vec<Multiaddr> {
        self.inner.local_addrs()
    }

    async fn accept(&mut self) -> Result<Transported, TransportError> {
        if self.failed.load(Ordering::SeqCst) < self.failures {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(TransportError::Io(std::io::Error::from_raw_os_error(24)));
        }
        self.inner.accept().await
    }
}

#[async_trait::async_trait]
impl Transport for Flaky {
    fn name(&self) -> &str {
        "flaky-memory"
    }
    fn can_dial(&self, addr: &Multiaddr) -> bool {
        self.inner.can_dial(addr)
    }
    fn can_listen(&self, addr: &Multiaddr) -> bool {
        self.inner.can_listen(addr)
    }
    async fn dial(
        &self,
        addr: &Multiaddr,
        opts: &TransportDialOpts,
    ) -> Result<Transported, TransportError> {
        self.inner.dial(addr, opts).await
    }
    async fn listen(&self, addr: &Multiaddr) -> Result<Box<dyn Listener>, TransportError> {
        Ok(Box::new(FlakyListener {
            inner: self.inner.listen(addr).await?,
            failures: self.failures,
            failed: self.failed.clone(),
        }))
    }
}

#[tokio::test]
async fn failed_accepts_are_retried_and_the_listener_keeps_listening() {
    let failed = Arc::new(AtomicUsize::new(0));
    let server = Host::builder()
        .transport(Arc::new(Flaky {
            inner: MemoryTransport::new(),
            failures: 5,
            failed: failed.clone(),
        }))
        .build()
        .unwrap();
    let addr = server.listen(&"/memory/0".parse().unwrap()).await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(server.peer_id()));
    let client = Host::builder().build().unwrap();
    let dialed = tokio::time::timeout(Duration::from_secs(10), client.dial(&addr)).await;
    dialed
        .expect("the dial did not finish")
        .expect("the listener stopped after failed accepts");
    assert_eq!(failed.load(Ordering::SeqCst), 5);
    assert_eq!(server.listen_addrs().len(), 1, "still listening");
    client.ping(server.peer_id()).await.unwrap();
    client.shutdown().await;
    server.shutdown().await;
}
