//! The rust-libp2p peer's `transport-interop` mode: libp2p/test-plans' contract (see
//! `weft_interop_tests::transport_interop`), parameters from the environment.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::ping;
use libp2p::swarm::SwarmEvent;
use weft_interop_tests::transport_interop::{
    publish_listener_addr, publishable_addr, wait_listener_addr, DialerReport, Params, Stack,
};
use weft_interop_tests::Security;

use crate::{build_swarm, BehaviourEvent, BoxError};

/// Runs one participant; `Ok(Some(report))` for a dialer, an error for a listener that
/// reached the timeout.
pub async fn run() -> Result<Option<DialerReport>, BoxError> {
    let params = Params::from_env()?;
    let stack = params.stack()?;
    let mut redis = params.redis().await?;
    // Every swarm also runs QUIC (with its own TLS); the TCP security is then unused.
    let mut swarm = build_swarm(match stack {
        Stack::Tcp { security } => security,
        Stack::Quic => Security::Tls,
    })?;
    if params.is_dialer {
        let dial = async {
            let addr = wait_listener_addr(&mut redis, &params.redis_addr, params.timeout).await?;
            let Some(Protocol::P2p(remote)) = addr.iter().last() else {
                return Err::<_, BoxError>(format!("{addr} does not end in /p2p/").into());
            };
            let started = Instant::now();
            swarm.dial(addr)?;
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                        peer,
                        result,
                        ..
                    })) if peer == remote => {
                        let rtt: Duration = result?;
                        return Ok(DialerReport::new(started.elapsed(), rtt));
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        return Err(format!("connect: {error}").into())
                    }
                    _ => {}
                }
            }
        };
        let report = tokio::time::timeout(params.timeout, dial)
            .await
            .map_err(|_| format!("dialer timed out after {:?}", params.timeout))??;
        return Ok(Some(report));
    }
    swarm.listen_on(stack.listen_addr(params.ip))?;
    let local = *swarm.local_peer_id();
    let serve = async {
        let mut reported = Vec::new();
        let mut published = false;
        loop {
            // Publish once the listener has reported its addresses (several for
            // 0.0.0.0: wait a moment for all of them).
            let event = if reported.is_empty() || published {
                swarm.select_next_some().await
            } else {
                match tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some())
                    .await
                {
                    Ok(event) => event,
                    Err(_) => {
                        let addr = publishable_addr(&reported)
                            .ok_or("no listen address")?
                            .with(Protocol::P2p(local));
                        eprintln!("listening on {addr}");
                        publish_listener_addr(&mut redis, &params.redis_addr, &addr).await?;
                        published = true;
                        continue;
                    }
                }
            };
            match event {
                SwarmEvent::NewListenAddr { address, .. } => reported.push(address),
                SwarmEvent::ListenerError { error, .. } => {
                    return Err::<(), BoxError>(error.into())
                }
                _ => {}
            }
        }
    };
    match tokio::time::timeout(params.timeout, serve).await {
        Ok(result) => result.map(|()| None),
        Err(_) => Err(format!(
            "still running after the test timeout ({:?})",
            params.timeout
        )
        .into()),
    }
}
