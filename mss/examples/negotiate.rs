//! Runs a multistream-select listener and dialer over TCP on 127.0.0.1 and prints the
//! transcript of both directions: `cargo run -p weft-mss --example negotiate`.

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_mss::{dialer_select, listener_select, Protocols, Version};

/// Logs every write of the wrapped stream as one transcript line.
struct Logged<T> {
    inner: T,
    who: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Logged<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Logged<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            let text = String::from_utf8_lossy(&buf[..*n])
                .escape_debug()
                .to_string();
            let line = format!("{} ({n} bytes, one write): {text}", self.who);
            self.log.lock().expect("log lock").push(line);
        }
        result
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;

    let listener_log = log.clone();
    let listener = tokio::spawn(async move {
        let (socket, _) = tcp.accept().await?;
        let io = Logged {
            inner: socket.compat(),
            who: "listener -> dialer",
            log: listener_log,
        };
        let supported = Protocols::new()
            .with_exact("/noise")
            .with_match("/echo/1.0.0", |id| id.starts_with("/echo/1."));
        let (protocol, mut stream) = listener_select(io, &supported).await?;
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await?;
        stream.write_all(&buf).await?;
        stream.flush().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(protocol)
    });

    let socket = TcpStream::connect(addr).await?;
    let io = Logged {
        inner: socket.compat(),
        who: "dialer -> listener",
        log: log.clone(),
    };
    let (protocol, mut stream) =
        dialer_select(io, ["/tls/1.0.0", "/echo/1.2.0"], Version::V1).await?;
    stream.write_all(b"hello").await?;
    stream.flush().await?;
    let mut echo = [0u8; 5];
    stream.read_exact(&mut echo).await?;

    let listener_protocol = listener.await?.map_err(|e| e.to_string())?;
    for line in log.lock().expect("log lock").iter() {
        println!("{line}");
    }
    println!("dialer negotiated {protocol}, listener negotiated {listener_protocol}");
    println!("echoed: {}", String::from_utf8_lossy(&echo));
    Ok(())
}
