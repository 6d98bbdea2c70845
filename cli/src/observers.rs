//! `--connect`: peers to connect to at the start and stay connected with. Each one
//! that identifies us reports the address it sees us at; several observers are how
//! a host behind a NAT learns its mapping, and how hole punching tells a symmetric
//! NAT apart (one address seen at a different port by each observer).

use std::collections::HashSet;
use std::time::Duration;
use weft_host::{Event, Host, Multiaddr, RecvError};

/// How long to wait for the observers' identify after connecting.
const IDENTIFY_WAIT: Duration = Duration::from_secs(10);

/// Connects to every address of `peers` at once and waits (at most
/// [`IDENTIFY_WAIT`]) until each connection made has been identified, so that their
/// observations are in before anything else starts. A peer that cannot be reached
/// is reported on stderr and left out.
pub async fn connect(host: &Host, peers: &[Multiaddr]) {
    if peers.is_empty() {
        return;
    }
    let mut events = host.subscribe();
    let dials = peers
        .iter()
        .map(|addr| async move { (addr, host.dial(addr).await) });
    let mut waiting = HashSet::new();
    for (addr, result) in futures::future::join_all(dials).await {
        match result {
            Ok(info) => {
                waiting.insert(info.id);
            }
            Err(e) => eprintln!("weft: cannot connect to {addr}: {e}"),
        }
    }
    let identified = tokio::time::timeout(IDENTIFY_WAIT, async {
        while !waiting.is_empty() {
            match events.recv().await {
                Ok(Event::PeerIdentified { connection, .. }) => {
                    waiting.remove(&connection);
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    })
    .await;
    if identified.is_err() {
        tracing::info!("not every peer of --connect answered identify in time");
    }
}
