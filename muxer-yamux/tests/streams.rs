//! weft-yamux against itself over real TCP on 127.0.0.1: opening, echo, half-close,
//! many streams, backpressure, resets, connection death and close.

mod support;

use futures::{AsyncReadExt, AsyncWriteExt};
use std::io::ErrorKind;
use std::time::Duration;
use support::*;
use weft_muxer_yamux::{YamuxConfig, STREAM_WINDOW};
use weft_upgrader::{MuxerError, Role};

#[tokio::test]
async fn echo_in_both_directions_and_both_roles() {
    let (client, server) = weft_pair(YamuxConfig::default()).await;
    spawn_echo_server(server.clone());
    spawn_echo_server(client.clone());
    for (name, opener) in [("initiator", &client), ("responder", &server)] {
        let data = pattern(300_000, 7);
        let stream = within(10, name, opener.open_stream()).await.unwrap();
        let echoed = within(10, name, echo_roundtrip(stream, &data))
            .await
            .unwrap();
        assert_eq!(echoed, data, "{name} opened the stream");
    }
}

#[tokio::test]
async fn half_close_keeps_the_other_direction_open() {
    let (client, server) = weft_pair(YamuxConfig::default()).await;
    let mut outbound = client.open_stream().await.unwrap();
    outbound.write_all(b"request").await.unwrap();
    outbound.close().await.unwrap();
    // Our write side is done ...
    let err = outbound.write_all(b"more").await.unwrap_err();
    assert_ne!(err.kind(), ErrorKind::Other, "{err}");

    let mut inbound = within(5, "accept", server.accept_stream()).await.unwrap();
    let mut request = Vec::new();
    within(5, "read to EOF", inbound.read_to_end(&mut request))
        .await
        .unwrap();
    assert_eq!(request, b"request");
    // ... while the remote keeps writing after our FIN, and we keep reading.
    for chunk in 0..4u8 {
        inbound.write_all(&pattern(50_000, chunk)).await.unwrap();
    }
    inbound.close().await.unwrap();
    let mut response = Vec::new();
    within(5, "read response", outbound.read_to_end(&mut response))
        .await
        .unwrap();
    let expected: Vec<u8> = (0..4u8).flat_map(|c| pattern(50_000, c)).collect();
    assert_eq!(response, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_streams_echo() {
    // Each client writes and half-closes at once, which yamux does not count as
    // waiting for an ACK: the remote may open all 1000 before we accept any, so the
    // backlog must hold them (with the default of 256 the excess would be reset).
    let config = YamuxConfig::default()
        .with_max_streams(1024)
        .with_max_receive_window(1024 * STREAM_WINDOW)
        .with_inbound_backlog(1024);
    let (client, server) = weft_pair(config).await;
    spawn_echo_server(server);
    let mut tasks = Vec::new();
    for i in 0..1000u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let data = pattern(2048 + (i as usize % 7) * 100, i as u8);
            let stream = client.open_stream().await.unwrap();
            let echoed = echo_roundtrip(stream, &data).await.unwrap();
            assert_eq!(echoed, data, "stream {i}");
        }));
    }
    within(30, "1000 streams", async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn a_reader_that_stops_reading_stops_the_writer() {
    let (client, server) = weft_pair(YamuxConfig::default()).await;
    let mut writer = client.open_stream().await.unwrap();
    writer.write_all(b"hi").await.unwrap();
    let mut reader = within(5, "accept", server.accept_stream()).await.unwrap();

    let chunk = vec![0x5a; 8 * 1024];
    let mut accepted = 2usize;
    loop {
        match tokio::time::timeout(Duration::from_millis(500), writer.write(&chunk)).await {
            Ok(result) => accepted += result.unwrap(),
            Err(_) => break, // blocked: out of window
        }
        assert!(
            accepted <= STREAM_WINDOW + chunk.len(),
            "writer accepted {accepted} bytes, the window is {STREAM_WINDOW}"
        );
    }
    assert!(
        accepted >= STREAM_WINDOW - chunk.len(),
        "writer blocked after only {accepted} bytes"
    );

    // Reading frees the window and the writer moves again.
    let mut sink = vec![0u8; STREAM_WINDOW];
    reader.read_exact(&mut sink).await.unwrap();
    within(
        5,
        "write after the reader caught up",
        writer.write_all(&chunk),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn reset_reaches_the_remote_as_an_error() {
    let (client, server) = weft_pair(YamuxConfig::default()).await;

    // Reset with both directions open: the remote's read fails instead of EOF.
    let mut outbound = client.open_stream().await.unwrap();
    outbound.write_all(b"x").await.unwrap();
    let mut inbound = within(5, "accept", server.accept_stream()).await.unwrap();
    let mut byte = [0u8; 1];
    inbound.read_exact(&mut byte).await.unwrap();
    outbound.reset();
    let err = within(5, "read after reset", inbound.read(&mut byte))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    let err = outbound.write_all(b"y").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");

    // Reset after our own half-close (yamux alone sends nothing then): the remote's
    // writes fail.
    let mut outbound = client.open_stream().await.unwrap();
    outbound.write_all(b"x").await.unwrap();
    outbound.close().await.unwrap();
    let mut inbound = within(5, "accept", server.accept_stream()).await.unwrap();
    let mut request = Vec::new();
    inbound.read_to_end(&mut request).await.unwrap();
    outbound.reset();
    let err = within(5, "write after reset", async {
        loop {
            if let Err(e) = inbound.write_all(&[1; 1024]).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");

    // Reset after the remote's half-close (yamux alone sends FIN then): the remote
    // reads an error, not EOF.
    let mut outbound = client.open_stream().await.unwrap();
    outbound.write_all(b"x").await.unwrap();
    let mut inbound = within(5, "accept", server.accept_stream()).await.unwrap();
    inbound.read_exact(&mut byte).await.unwrap();
    inbound.close().await.unwrap();
    let mut rest = Vec::new();
    outbound.read_to_end(&mut rest).await.unwrap();
    outbound.reset();
    let err = within(5, "read after reset", inbound.read(&mut byte))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test]
async fn dead_tcp_fails_every_open_stream_promptly() {
    // A TCP relay between the peers, so the test can cut the wire mid-transfer.
    let (client_tcp, relay_a) = tcp_pair().await;
    let (relay_b, server_tcp) = tcp_pair().await;
    let relay = tokio::spawn(async move {
        let (mut a, mut b) = (relay_a, relay_b);
        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
    });
    let (client, client_driver) = weft_peer(client_tcp, Role::Initiator, YamuxConfig::default());
    let (server, _) = weft_peer(server_tcp, Role::Responder, YamuxConfig::default());

    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..5 {
        let mut stream = client.open_stream().await.unwrap();
        stream.write_all(b"start").await.unwrap();
        writers.push(stream);
        readers.push(within(5, "accept", server.accept_stream()).await.unwrap());
    }
    // Writers keep sending until their window is gone; readers read a little.
    let mut write_tasks = Vec::new();
    for mut stream in writers {
        write_tasks.push(tokio::spawn(async move {
            let chunk = vec![7u8; 16 * 1024];
            loop {
                if let Err(e) = stream.write_all(&chunk).await {
                    return e;
                }
            }
        }));
    }
    let mut read_tasks = Vec::new();
    for mut stream in readers {
        read_tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) => return Err(()),
                    Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Err(e) => return Ok(e),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    relay.abort(); // drops both relay sockets

    within(3, "writers to fail", async {
        for task in write_tasks {
            let err = task.await.unwrap();
            assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
        }
    })
    .await;
    within(3, "readers to fail", async {
        for task in read_tasks {
            let err = task.await.unwrap().expect("an error, not EOF");
            assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
        }
    })
    .await;
    within(3, "client driver to end", client_driver)
        .await
        .unwrap()
        .ok();
    assert!(client.is_closed() && server.is_closed());
    assert!(matches!(
        client.open_stream().await,
        Err(MuxerError::Closed)
    ));
}

#[tokio::test]
async fn close_sends_go_away_and_ends_the_connection() {
    let (client, server) = weft_pair(YamuxConfig::default()).await;
    let mut stream = client.open_stream().await.unwrap();
    stream.write_all(b"x").await.unwrap();
    let mut inbound = within(5, "accept", server.accept_stream()).await.unwrap();
    assert!(!server.remote_went_away());

    within(5, "close", client.close()).await.unwrap();
    assert!(client.is_closed());
    assert!(matches!(
        client.open_stream().await,
        Err(MuxerError::Closed)
    ));

    // The remote sees the go-away, its accept fails, its stream is aborted after the
    // data already received.
    assert!(matches!(
        within(5, "accept after close", server.accept_stream()).await,
        Err(MuxerError::Closed)
    ));
    assert!(server.remote_went_away());
    assert!(server.is_closed());
    let mut byte = [0u8; 1];
    inbound.read_exact(&mut byte).await.unwrap();
    let err = inbound.read(&mut byte).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
    // Our own stream fails too.
    let err = stream.write_all(b"y").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
    // Closing again is fine.
    within(5, "second close", client.close()).await.unwrap();
}

#[tokio::test]
async fn a_clean_end_before_close_still_reads_as_eof() {
    let (client, server) = weft_pair(YamuxConfig::default()).await;
    let mut stream = client.open_stream().await.unwrap();
    stream.write_all(b"question").await.unwrap();
    let mut inbound = within(5, "accept", server.accept_stream()).await.unwrap();
    let mut question = [0u8; 8];
    inbound.read_exact(&mut question).await.unwrap();
    inbound.write_all(b"answer").await.unwrap();
    inbound.close().await.unwrap();
    within(5, "server close", server.close()).await.unwrap();
    // The answer and its FIN arrived before the go-away: a clean EOF.
    let mut answer = Vec::new();
    within(5, "read answer", stream.read_to_end(&mut answer))
        .await
        .unwrap();
    assert_eq!(answer, b"answer");
}

#[tokio::test]
async fn full_backlog_resets_new_inbound_streams() {
    let config = YamuxConfig::default().with_inbound_backlog(2);
    let (client, server) = weft_pair(config).await;
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut stream = client.open_stream().await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        streams.push(stream);
    }
    // Nobody accepts on the server: the first two wait, the others are reset.
    let mut byte = [0u8; 1];
    for stream in &mut streams[2..] {
        let err = within(5, "reset of a rejected stream", stream.read(&mut byte))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    }
    for _ in 0..2 {
        let mut inbound = within(5, "accept", server.accept_stream()).await.unwrap();
        let mut hello = [0u8; 5];
        inbound.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hello");
    }
}

#[tokio::test]
async fn stream_limit_fails_the_open_but_not_the_connection() {
    let config = YamuxConfig::default().with_max_streams(2);
    let (client, server) = weft_pair(config).await;
    spawn_echo_server(server);
    let first = client.open_stream().await.unwrap();
    let second = client.open_stream().await.unwrap();
    assert!(matches!(
        client.open_stream().await,
        Err(MuxerError::TooManyStreams)
    ));
    drop(first);
    let echoed = within(5, "echo", echo_roundtrip(second, b"still alive"))
        .await
        .unwrap();
    assert_eq!(echoed, b"still alive");
    let third = client.open_stream().await.unwrap();
    let echoed = within(5, "echo", echo_roundtrip(third, b"again"))
        .await
        .unwrap();
    assert_eq!(echoed, b"again");
}
