//! `weft dial --reconnect N`: connect again and again to one peer, and report per
//! attempt whether the session was resumed, whether the early (0-RTT) data was
//! accepted, and the time from dial to the first response byte, in milliseconds and
//! in round trips.
//!
//! Each attempt dials with early data and sends one ping (32 random bytes, a
//! request safe to run twice) on an early stream: on a resumed QUIC session it
//! leaves with the handshake, so its echo arrives one round trip after the dial
//! started; on a first connection it waits for the handshake (two round trips).
//! A ping whose early data the listener rejected is sent again on a normal stream
//! (and its time counts). The round trips are the time to the first byte over the
//! transport's own RTT estimate after the attempt (QUIC: quinn's smoothed RTT).
//! Each connection stays up two more round trips, so that the listener's session
//! tickets reach us before it closes (a connection closed sooner leaves the next
//! attempt without a ticket: a full handshake).

use futures::io::{AsyncReadExt, AsyncWriteExt};
use serde::Serialize;
use std::time::{Duration, Instant};
use weft_host::{ConnectionInfo, DialOpts, EarlyData, Host, Multiaddr, PeerId, Protocol};

/// One connection attempt of `weft dial --reconnect`.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// 0 for the first connection, then 1..=N.
    pub attempt: usize,
    /// Whether the handshake resumed a session (`None`: the transport does not say).
    pub resumed: Option<bool>,
    /// What became of early data: `accepted`, `rejected` or `none` (not sent).
    pub early_data: &'static str,
    /// Dial start to the first byte of the ping's echo, in milliseconds.
    pub first_byte_ms: f64,
    /// The transport's RTT estimate after the attempt, in milliseconds (0: none).
    pub rtt_ms: f64,
    /// `first_byte_ms / rtt_ms` (0 without an RTT estimate).
    pub rtts: f64,
}

/// The address with `/p2p/<peer>` at its end, so that a dial knows whom it expects
/// (resumption needs it).
pub fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

fn early_data_name(early: EarlyData) -> &'static str {
    match early {
        EarlyData::Accepted => "accepted",
        EarlyData::Rejected => "rejected",
        EarlyData::Pending => "pending",
        _ => "none",
    }
}

/// Sends one ping on `stream` and returns when its echo's first byte arrived (and
/// the rest matched).
async fn ping_on(stream: &mut weft_host::Stream) -> Result<Instant, String> {
    let payload: [u8; 32] = rand::random();
    stream
        .write_all(&payload)
        .await
        .map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut echo = [0u8; 32];
    stream
        .read_exact(&mut echo[..1])
        .await
        .map_err(|e| e.to_string())?;
    let first = Instant::now();
    stream
        .read_exact(&mut echo[1..])
        .await
        .map_err(|e| e.to_string())?;
    if echo != payload {
        return Err("the ping came back altered".into());
    }
    let _ = stream.close().await;
    Ok(first)
}

/// One attempt: dial `addr` with early data, ping, wait for the handshake, report.
/// The connection stays open; its info is returned too. Only an address with
/// `/p2p/` can resume a session ([`with_peer`]).
pub async fn attempt(
    host: &Host,
    addr: &Multiaddr,
    number: usize,
) -> Result<(Attempt, ConnectionInfo), String> {
    let started = Instant::now();
    let info = host
        .dial_with(addr, DialOpts::new().with_early_data(true))
        .await
        .map_err(|e| crate::explain::dial_failed(addr, &e))?;
    let peer = info.peer;
    let early = async {
        let mut stream = host
            .new_early_stream(peer, &[weft_host::ping::PROTOCOL])
            .await
            .map_err(|e| e.to_string())?;
        ping_on(&mut stream).await
    };
    let first = match early.await {
        Ok(first) => first,
        Err(error) => {
            // A rejected early stream fails; the handshake completes without it.
            host.handshake_complete(info.id).await;
            let rejected = host
                .session_info(info.id)
                .is_some_and(|s| s.early_data == EarlyData::Rejected);
            if !rejected {
                return Err(crate::explain::step_failed(addr, "ping", &error));
            }
            let mut stream = host
                .new_stream(peer, &[weft_host::ping::PROTOCOL])
                .await
                .map_err(|e| crate::explain::step_failed(addr, "ping", &e))?;
            ping_on(&mut stream)
                .await
                .map_err(|e| crate::explain::step_failed(addr, "ping", &e))?
        }
    };
    let first_byte = first.duration_since(started);
    if !host.handshake_complete(info.id).await {
        return Err(format!("the handshake with {addr} failed after the ping"));
    }
    let session = host
        .session_info(info.id)
        .ok_or_else(|| format!("the connection to {addr} closed"))?;
    let rtt = session.rtt.unwrap_or(Duration::ZERO);
    // The listener sends its session tickets once our Finished reached it: give
    // them two round trips to arrive, or the next attempt may find none left.
    tokio::time::sleep((rtt * 2).min(Duration::from_secs(1))).await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let attempt = Attempt {
        attempt: number,
        resumed: session.resumed,
        early_data: early_data_name(session.early_data),
        first_byte_ms: ms(first_byte),
        rtt_ms: ms(rtt),
        rtts: if rtt.is_zero() {
            0.0
        } else {
            first_byte.as_secs_f64() / rtt.as_secs_f64()
        },
    };
    Ok((attempt, info))
}

/// Closes every connection to `peer` and waits until the host has none.
pub async fn disconnect(host: &Host, peer: &PeerId) -> Result<(), String> {
    host.disconnect(peer).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while host.is_connected(peer) {
        if Instant::now() > deadline {
            return Err(format!("the connection to {peer} did not close"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Prints the attempts for people.
pub fn print_human(attempts: &[Attempt]) {
    for a in attempts {
        let label = if a.attempt == 0 {
            "first".to_string()
        } else {
            format!("reconnect {}", a.attempt)
        };
        let resumed = match a.resumed {
            Some(true) => "resumed",
            Some(false) => "full handshake",
            None => "resumption unknown",
        };
        println!(
            "{label:<14} {resumed}, 0-RTT {}, first byte {:.3} ms = {:.1} RTT (RTT {:.3} ms)",
            a.early_data, a.first_byte_ms, a.rtts, a.rtt_ms
        );
    }
}
