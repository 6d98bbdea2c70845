//! `/echo/1.0.0`: the remote echoes every byte until we half-close, then closes.

use crate::progress::Progress;
use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::{Duration, Instant};
use weft_host::{Host, PeerId, Stream};

/// The echo protocol id.
pub const PROTOCOL: &str = "/echo/1.0.0";
const CHUNK: usize = 64 * 1024;

/// Serves echo on the host.
pub fn serve(host: &Host) {
    host.set_handler(PROTOCOL, |mut stream: Stream| async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let _ = stream.close().await;
    });
}

/// Sends `len` random bytes, reads the echo concurrently, and checks it. Returns the
/// time taken. Shows the bytes echoed back, the rate and the time left on a terminal.
pub async fn check(host: &Host, peer: PeerId, len: usize) -> Result<Duration, String> {
    let data: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
    let started = Instant::now();
    let stream = host
        .new_stream(peer, &[PROTOCOL])
        .await
        .map_err(|e| format!("echo: {e}"))?;
    let (mut reader, mut writer) = stream.split();
    let send = async {
        for chunk in data.chunks(CHUNK) {
            writer.write_all(chunk).await?;
        }
        writer.close().await
    };
    let progress = Progress::new("echo", len as u64);
    let receive = async {
        let mut got = Vec::with_capacity(len);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() > len {
                break;
            }
            progress.add(n);
        }
        Ok::<_, std::io::Error>(got)
    };
    let (sent, got) = futures::join!(send, receive);
    progress.finish();
    sent.map_err(|e| format!("echo: sending failed: {e}"))?;
    let got = got.map_err(|e| format!("echo: receiving failed: {e}"))?;
    if got != data {
        return Err(format!(
            "echo: got back {} bytes that differ from the {} sent",
            got.len(),
            len
        ));
    }
    Ok(started.elapsed())
}
