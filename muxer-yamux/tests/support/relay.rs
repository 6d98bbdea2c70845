//! A TCP relay on 127.0.0.1 that delays every byte, and can stop passing bytes
//! without closing anything (a dead link: a NAT mapping dropped, a cable pulled).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A relay between one dialer and `target`.
pub struct Relay {
    /// Where to dial to reach `target` through the relay.
    pub addr: std::net::SocketAddr,
    stopped: Arc<AtomicBool>,
}

impl Relay {
    /// Starts a relay to `target` that delays each direction by `one_way`.
    pub async fn start(target: std::net::SocketAddr, one_way: Duration) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        tokio::spawn(async move {
            let (inbound, _) = listener.accept().await.unwrap();
            let outbound = TcpStream::connect(target).await.unwrap();
            inbound.set_nodelay(true).unwrap();
            outbound.set_nodelay(true).unwrap();
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            tokio::spawn(pipe(ir, ow, one_way, flag.clone()));
            tokio::spawn(pipe(or, iw, one_way, flag));
        });
        Relay { addr, stopped }
    }

    /// From now on nothing passes, either way; the sockets stay open.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    stopped: Arc<AtomicBool>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let dead = stopped.clone();
    let writer = tokio::spawn(async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if dead.load(Ordering::SeqCst) {
                continue; // bytes in flight on a dead link are lost
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // Keep the write half (and so the connection) open however the reader ends.
        std::future::pending::<()>().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stopped.load(Ordering::SeqCst) {
            // A dead link: hold the socket open, pass nothing, read nothing.
            std::future::pending::<()>().await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stopped.load(Ordering::SeqCst) {
            continue;
        }
        if tx
            .send((Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
