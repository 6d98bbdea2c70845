//! weft against real peers that nobody here wrote: go-libp2p, js-libp2p and
//! rust-libp2p (the contract programs in `peers/`), both directions, Noise and TLS,
//! yamux: connect, identify (agent and protocols checked), ping, and a 1 MiB
//! `/echo/1.0.0` round trip with half-close.
//!
//! The weft side runs in-process on `weft-host`; `weft_cli_*` tests run the `weft`
//! binary itself as a contract participant. Each test writes its result rows to
//! `target/interop/results-<name>.md` (the README's table is made from them).
//! Without `go`/`node`/`npm` a test prints `skipped: ...`; under `CI=true` it fails.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::sync::Arc;
use std::time::Duration;
use weft_host::{Event, Host, Keypair, PeerId, Protocol, Stream};
use weft_interop_tests::{
    paths, require_impls, run_dialer, run_dialer_command, DialOptions, Impl, ListeningPeer,
    PeerCommand, Security, DEFAULT_ECHO_BYTES,
};

const ECHO: &str = "/echo/1.0.0";
const TIMEOUT: Duration = Duration::from_secs(60);

fn weft_host(security: Security) -> Host {
    let keypair = Keypair::generate_ed25519();
    let sec: Arc<dyn weft_upgrader::SecurityUpgrade> = match security {
        Security::Noise => Arc::new(weft_security_noise::Noise::new(&keypair).unwrap()),
        Security::Tls => Arc::new(weft_security_tls::TlsUpgrade::new(keypair.clone())),
    };
    let host = Host::builder()
        .keypair(keypair)
        .security(sec)
        .agent_version("weft-interop")
        .build()
        .unwrap();
    host.set_handler(ECHO, |mut s: Stream| async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let _ = s.close().await;
    });
    host
}

/// Echoes `len` random bytes through the peer, writing and reading at once.
async fn echo_through(host: &Host, peer: PeerId, len: usize) -> Result<(), String> {
    let data: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
    let stream = host
        .new_stream(peer, &[ECHO])
        .await
        .map_err(|e| format!("open echo: {e}"))?;
    let (mut r, mut w) = stream.split();
    let send = async {
        for chunk in data.chunks(64 * 1024) {
            w.write_all(chunk).await?;
        }
        w.close().await
    };
    let recv = async {
        let mut got = Vec::with_capacity(len);
        r.read_to_end(&mut got).await?;
        Ok::<_, std::io::Error>(got)
    };
    let (s, got) = futures::join!(send, recv);
    s.map_err(|e| format!("echo write: {e}"))?;
    let got = got.map_err(|e| format!("echo read: {e}"))?;
    if got != data {
        return Err(format!(
            "echo returned {} bytes that differ from the {len} sent",
            got.len()
        ));
    }
    Ok(())
}

/// weft dials a listening reference peer.
async fn weft_dials(imp: Impl, security: Security) -> Result<String, String> {
    let peer = ListeningPeer::spawn(imp, security)
        .await
        .map_err(|e| format!("listener: {e}"))?;
    let host = weft_host(security);
    let mut events = host.subscribe();
    let run = async {
        let info = host
            .dial(peer.addr())
            .await
            .map_err(|e| format!("dial: {e}"))?;
        if info.security != security.protocol_id() || info.muxer != "/yamux/1.0.0" {
            return Err(format!("negotiated {} + {}", info.security, info.muxer));
        }
        let (agent, protocols) = loop {
            match events.recv().await {
                Ok(Event::PeerIdentified {
                    peer: p,
                    agent_version,
                    protocols,
                    ..
                }) if p == peer.peer_id() => break (agent_version, protocols),
                Ok(_) | Err(weft_host::RecvError::Lagged(_)) => continue,
                Err(e) => return Err(format!("events: {e}")),
            }
        };
        if agent != imp.agent_version() {
            return Err(format!(
                "identify agent {agent:?}, expected {:?}",
                imp.agent_version()
            ));
        }
        for p in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO] {
            if !protocols.iter().any(|q| q == p) {
                return Err(format!("identify lacks {p}: {protocols:?}"));
            }
        }
        let rtt = host
            .ping(peer.peer_id())
            .await
            .map_err(|e| format!("ping: {e}"))?;
        echo_through(&host, peer.peer_id(), DEFAULT_ECHO_BYTES as usize).await?;
        Ok(format!("ok (rtt {:.2} ms)", rtt.as_secs_f64() * 1e3))
    };
    let result = tokio::time::timeout(TIMEOUT, run)
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
    host.shutdown().await;
    result.map_err(|e| format!("{e}\npeer stderr:\n{}", peer.stderr()))
}

/// A reference peer dials a listening weft host.
async fn weft_listens(imp: Impl, security: Security) -> Result<String, String> {
    let host = weft_host(security);
    let addrs = host
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let addr = addrs[0].clone().with(Protocol::P2p(host.peer_id()));
    let result = run_dialer(imp, &addr, security, DEFAULT_ECHO_BYTES)
        .await
        .map_err(|e| e.to_string());
    host.shutdown().await;
    let report = result?;
    if report.remote_peer != host.peer_id() {
        return Err(format!(
            "the peer proved {} instead of {}",
            report.remote_peer,
            host.peer_id()
        ));
    }
    if report.agent_version != "weft-interop" {
        return Err(format!("the peer saw agent {:?}", report.agent_version));
    }
    for p in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO] {
        if !report.protocols.iter().any(|q| q == p) {
            return Err(format!(
                "the peer's identify of us lacks {p}: {:?}",
                report.protocols
            ));
        }
    }
    if report.security != security.protocol_id() || report.echo_bytes != DEFAULT_ECHO_BYTES {
        return Err(format!("unexpected report {report:?}"));
    }
    Ok(format!("ok (rtt {:.2} ms)", report.rtt_ms))
}

/// Runs both directions with both security protocols against one implementation,
/// records the rows, and fails if any cell failed.
async fn matrix(imp: Impl) {
    if !require_impls(&[imp]) {
        return;
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for security in [Security::Noise, Security::Tls] {
        let (dials, listens) = tokio::join!(weft_dials(imp, security), weft_listens(imp, security));
        for (direction, result) in [
            (format!("weft -> {imp}"), dials),
            (format!("{imp} -> weft"), listens),
        ] {
            match result {
                Ok(note) => rows.push(format!(
                    "| {direction} | {} | yamux | {note} |",
                    security.protocol_id()
                )),
                Err(e) => {
                    rows.push(format!(
                        "| {direction} | {} | yamux | FAILED |",
                        security.protocol_id()
                    ));
                    failures.push(format!("{direction} over {}: {e}", security.protocol_id()));
                }
            }
        }
    }
    write_rows(imp.name(), &rows);
    assert!(
        failures.is_empty(),
        "interop failures:\n{}",
        failures.join("\n\n")
    );
}

fn write_rows(name: &str, rows: &[String]) {
    let dir = paths::target_dir().join("interop");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join(format!("results-{name}.md")),
        rows.join("\n") + "\n",
    );
    for r in rows {
        eprintln!("{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_and_go_libp2p() {
    matrix(Impl::Go).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_and_js_libp2p() {
    matrix(Impl::Js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_and_rust_libp2p() {
    matrix(Impl::Rust).await;
}

/// The `weft` binary, built if a plain `cargo test -p weft-interop-tests` left it out.
fn weft_cli() -> PeerCommand {
    let bin = paths::profile_dir().join("weft");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "weft-cli", "--bin", "weft"])
            .status()
            .expect("run cargo build for the weft binary");
        assert!(status.success(), "building the weft binary failed");
    }
    // `--json` goes before the subcommand: `weft --json dial ...` prints the contract's line.
    PeerCommand::new("weft", bin).arg("--json")
}

/// The `weft` command follows the peer contract: `weft listen` against the Rust peer's
/// dialer, and `weft dial` against the Rust peer's listener, Noise and TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_cli_follows_the_peer_contract() {
    let weft = weft_cli();
    for security in [Security::Noise, Security::Tls] {
        let listener = ListeningPeer::spawn_command(&weft, security).await.unwrap();
        let report = run_dialer(Impl::Rust, listener.addr(), security, DEFAULT_ECHO_BYTES)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "rust peer -> weft listen over {security}: {e}\n{}",
                    listener.stderr()
                )
            });
        assert_eq!(report.remote_peer, listener.peer_id());
        assert!(report.agent_version.starts_with("weft/"), "{report:?}");
        // `/perf/1.0.0` is served only with `weft listen --perf`.
        assert!(
            !report.protocols.iter().any(|p| p == "/perf/1.0.0"),
            "{report:?}"
        );

        let peer = ListeningPeer::spawn(Impl::Rust, security).await.unwrap();
        let options = DialOptions {
            echo_bytes: DEFAULT_ECHO_BYTES,
            timeout_secs: 30,
        };
        let report = run_dialer_command(&weft, peer.addr(), security, options)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "weft dial -> rust peer over {security}: {e}\n{}",
                    peer.stderr()
                )
            });
        assert_eq!(report.remote_peer, peer.peer_id());
        assert_eq!(report.agent_version, Impl::Rust.agent_version());
        assert_eq!(report.security, security.protocol_id());
        assert_eq!(report.echo_bytes, DEFAULT_ECHO_BYTES);
    }
}
