//! An in-memory transport (`/memory/<port>`) for tests and for hosts in one process.

use super::{Listener, Transport, TransportDialOpts, TransportError, TransportOutput, Transported};
use multiaddr::{Multiaddr, Protocol};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// Bytes buffered in each direction of an in-memory connection.
const PIPE_CAPACITY: usize = 256 * 1024;
/// Connections waiting to be accepted per listener.
const ACCEPT_BACKLOG: usize = 128;

type Registry = Mutex<HashMap<u64, mpsc::Sender<(DuplexStream, u64)>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

fn memory_port(addr: &Multiaddr) -> Option<u64> {
    let mut iter = addr.iter();
    match (iter.next(), iter.next()) {
        (Some(Protocol::Memory(port)), None) => Some(port),
        _ => None,
    }
}

/// The in-memory transport. Listeners live in a process-wide registry keyed by port;
/// `/memory/0` picks a free port.
#[derive(Debug, Default, Clone)]
pub struct MemoryTransport;

impl MemoryTransport {
    /// A new in-memory transport.
    pub fn new() -> Self {
        MemoryTransport
    }
}

#[async_trait::async_trait]
impl Transport for MemoryTransport {
    fn name(&self) -> &str {
        "memory"
    }

    fn can_dial(&self, addr: &Multiaddr) -> bool {
        memory_port(addr).is_some_and(|p| p != 0)
    }

    fn can_listen(&self, addr: &Multiaddr) -> bool {
        memory_port(addr).is_some()
    }

    async fn dial(
        &self,
        addr: &Multiaddr,
        _opts: &TransportDialOpts,
    ) -> Result<Transported, TransportError> {
        let port = memory_port(addr)
            .filter(|p| *p != 0)
            .ok_or_else(|| TransportError::Unsupported(addr.clone()))?;
        let sender = {
            let map = registry().lock().map_err(|_| TransportError::Closed)?;
            map.get(&port).cloned()
        };
        let sender = sender.ok_or_else(|| {
            TransportError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("nothing listens on /memory/{port}"),
            ))
        })?;
        let (ours, theirs) = tokio::io::duplex(PIPE_CAPACITY);
        let dialer_port = rand::random::<u64>() | 1 << 63;
        sender.send((theirs, dialer_port)).await.map_err(|_| {
            TransportError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("the listener on /memory/{port} closed"),
            ))
        })?;
        Ok(Transported {
            output: TransportOutput::Raw(Box::new(ours.compat())),
            local_addr: Multiaddr::empty().with(Protocol::Memory(dialer_port)),
            remote_addr: addr.clone(),
        })
    }

    async fn listen(&self, addr: &Multiaddr) -> Result<Box<dyn Listener>, TransportError> {
        let mut port =
            memory_port(addr).ok_or_else(|| TransportError::Unsupported(addr.clone()))?;
        let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
        let mut map = registry().lock().map_err(|_| TransportError::Closed)?;
        if port == 0 {
            port = loop {
                let candidate = rand::random::<u64>() >> 1;
                if candidate != 0 && !map.contains_key(&candidate) {
                    break candidate;
                }
            };
        } else if map.contains_key(&port) {
            return Err(TransportError::Io(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("/memory/{port} is in use"),
            )));
        }
        map.insert(port, tx);
        Ok(Box::new(MemoryListener { port, incoming: rx }))
    }
}

struct MemoryListener {
    port: u64,
    incoming: mpsc::Receiver<(DuplexStream, u64)>,
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        if let Ok(mut map) = registry().lock() {
            map.remove(&self.port);
        }
    }
}

#[async_trait::async_trait]
impl Listener for MemoryListener {
    fn local_addrs(&self) -> Vec<Multiaddr> {
        vec![Multiaddr::empty().with(Protocol::Memory(self.port))]
    }

    async fn accept(&mut self) -> Result<Transported, TransportError> {
        let (stream, remote_port) = self.incoming.recv().await.ok_or(TransportError::Closed)?;
        Ok(Transported {
            output: TransportOutput::Raw(Box::new(stream.compat())),
            local_addr: Multiaddr::empty().with(Protocol::Memory(self.port)),
            remote_addr: Multiaddr::empty().with(Protocol::Memory(remote_port)),
        })
    }
}
