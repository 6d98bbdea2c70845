//! Whatever subset of the implementation features a host is built with, its default
//! configuration works end to end over TCP (CI runs this file under several feature
//! combinations: only `noise` + `yamux`, only `tls` + `yamux`, and the workspace's).

use futures::{AsyncReadExt, AsyncWriteExt};
use weft_host::{Host, Protocol};

#[tokio::test]
async fn the_default_host_of_this_feature_set_connects_and_echoes() {
    let server = Host::builder().build().unwrap();
    server.set_handler("/echo/1.0.0", |mut s| async move {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let _ = s.write_all(&buf).await;
        let _ = s.close().await;
    });
    let addrs = server
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap();
    let client = Host::builder().build().unwrap();
    let info = client
        .dial(&addrs[0].clone().with(Protocol::P2p(server.peer_id())))
        .await
        .unwrap();
    let expected_security = if cfg!(feature = "noise") {
        "/noise"
    } else {
        "/tls/1.0.0"
    };
    assert_eq!(info.security, expected_security);
    assert_eq!(info.muxer, "/yamux/1.0.0");
    let mut s = client
        .new_stream(server.peer_id(), &["/echo/1.0.0"])
        .await
        .unwrap();
    s.write_all(b"features").await.unwrap();
    s.close().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"features");
    client.ping(server.peer_id()).await.unwrap();
    client.shutdown().await;
    server.shutdown().await;
}

/// The redb backend comes from the dev-dependency on `weft-peerstore` (with `redb`),
/// so this runs under every feature set; the host's own `redb` feature only turns
/// that backend on for users.
#[tokio::test]
async fn a_host_on_the_redb_peerstore_remembers_peers_across_restarts() {
    use std::sync::Arc;
    use weft_peerstore::RedbPeerStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let server = Host::builder().build().unwrap();
    let addrs = server
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap();
    {
        let store = Arc::new(RedbPeerStore::open(&path).unwrap());
        let client = Host::builder().peerstore(store).build().unwrap();
        client
            .dial(&addrs[0].clone().with(Protocol::P2p(server.peer_id())))
            .await
            .unwrap();
        client.ping(server.peer_id()).await.unwrap();
        client.shutdown().await;
    }
    // A new host on the same file dials the peer by id alone.
    let store = Arc::new(RedbPeerStore::open(&path).unwrap());
    let client = Host::builder().peerstore(store).build().unwrap();
    client.dial_peer(server.peer_id()).await.unwrap();
    client.shutdown().await;
    server.shutdown().await;
}
