//! debug
use std::time::Instant;
use weft_host::{Host, Protocol};
#[tokio::test]
async fn dbg() {
    let server = Host::builder().build().unwrap();
    server.set_handler("/echo/1.0.0", |mut s| async move {
        use futures::{AsyncReadExt, AsyncWriteExt};
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).await.is_ok() {
            let _ = s.write_all(&buf).await;
            let _ = s.close().await;
        }
    });
    let addrs = server
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap();
    let client = Host::builder().build().unwrap();
    let mut sev = server.subscribe();
    client
        .dial(&addrs[0].clone().with(Protocol::P2p(server.peer_id())))
        .await
        .unwrap();
    if std::env::var("PING").is_ok() {
        client.ping(server.peer_id()).await.unwrap();
    }
    if std::env::var("ECHO").is_ok() {
        use futures::{AsyncReadExt, AsyncWriteExt};
        let t = Instant::now();
        let mut s = client
            .new_stream(server.peer_id(), &["/echo/1.0.0"])
            .await
            .unwrap();
        s.write_all(&vec![1u8; 1 << 20]).await.unwrap();
        s.close().await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        println!("echo {:?}", t.elapsed());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let t = Instant::now();
    client.shutdown().await;
    println!("client shutdown {:?}", t.elapsed());
    loop {
        if let Ok(weft_host::Event::Disconnected { .. }) = sev.recv().await {
            break;
        }
    }
    println!("server saw disconnect {:?}", t.elapsed());
    let t = Instant::now();
    server.shutdown().await;
    println!("server shutdown {:?}", t.elapsed());
}
