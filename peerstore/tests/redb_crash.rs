//! Crash safety of the persistent backend: a child process (this test binary, re-run in
//! "writer" mode) writes to the store and acknowledges each committed write on stdout;
//! it is killed with SIGKILL mid-way, twenty times. Each time, the store must open and
//! hold every write acknowledged before the kill.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use weft_peerstore::{PeerStore, RedbPeerStore, PERMANENT_ADDR_TTL};

/// Set (to the store path) in the child: run as the writer.
const WRITER_PATH_ENV: &str = "WEFT_PEERSTORE_CRASH_WRITER_PATH";
/// The first write index of the child.
const WRITER_START_ENV: &str = "WEFT_PEERSTORE_CRASH_WRITER_START";
const ROUNDS: u32 = 20;

/// The peer of write `i` (the same in parent and child).
fn peer(i: u32) -> PeerId {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    seed[31] = 1;
    Keypair::ed25519_from_bytes(seed)
        .unwrap()
        .public()
        .to_peer_id()
}

fn addr(i: u32) -> Multiaddr {
    format!(
        "/ip4/10.{}.{}.{}/tcp/4001",
        i >> 16 & 255,
        i >> 8 & 255,
        i & 255
    )
    .parse()
    .unwrap()
}

/// The child's work; a no-op when the test harness runs it normally.
#[test]
fn crash_writer_child() {
    let Ok(path) = std::env::var(WRITER_PATH_ENV) else {
        return;
    };
    let start: u32 = std::env::var(WRITER_START_ENV).unwrap().parse().unwrap();
    let store = RedbPeerStore::open(&path).unwrap();
    let mut out = std::io::stdout().lock();
    for i in start.. {
        store
            .add_addrs(&peer(i), &[addr(i)], PERMANENT_ADDR_TTL)
            .unwrap();
        store
            .put_metadata(&peer(i), "seq", &i.to_be_bytes())
            .unwrap();
        writeln!(out, "ACK {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var(WRITER_PATH_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut next = 0u32;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_PATH_ENV, &path)
            .env(WRITER_START_ENV, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Vary how long each child lives: 1 to 11 acknowledged writes.
        let wanted = 1 + (round * 7) % 11;
        let mut acked = 0;
        let mut last = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("ACK ") {
                last = Some(n.parse::<u32>().unwrap());
                acked += 1;
                if acked == wanted {
                    break;
                }
            }
        }
        // The child keeps writing: the SIGKILL lands in the middle of a write.
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(acked, wanted, "round {round}: the writer stopped early");
        next = last.unwrap() + 1;

        let store = RedbPeerStore::open(&path)
            .unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
        for i in 0..next {
            assert_eq!(store.addrs(&peer(i)).unwrap(), vec![addr(i)], "write {i}");
            assert_eq!(
                store.metadata(&peer(i), "seq").unwrap(),
                Some(i.to_be_bytes().to_vec()),
                "write {i}"
            );
        }
        // Writes after the last acknowledgement may or may not be there.
        assert!(store.peer_count().unwrap() >= next as usize);
    }
}
