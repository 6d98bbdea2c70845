//! `weft listen` on `0.0.0.0` follows the interfaces: an address added to an interface
//! while it runs is printed (and dialable), one removed is reported as gone.
//!
//! The interfaces are those of a network namespace the test makes (so nothing of the
//! machine's own network is touched or dialed); that needs `ip` (iproute2) and root,
//! or `sudo` without a password. Without them the test says it was skipped, except
//! under `CI=true`, where it fails.

mod support;

use std::process::Stdio;
use std::time::Duration;
use support::{weft, WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A network namespace of this test's own, deleted on drop.
struct Namespace {
    name: String,
    /// The prefix that runs `ip` with the rights it needs.
    privilege: &'static [&'static str],
}

impl Namespace {
    fn create(privilege: &'static [&'static str]) -> Self {
        let name = format!("weft-ifaces-{}", std::process::id());
        ip(privilege, &["netns", "add", &name]);
        let ns = Namespace { name, privilege };
        ns.run_ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip ARGS` inside the namespace; panics when it fails.
    fn run_ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(self.privilege, &all);
    }

    /// A command that runs `program` inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut c = privileged(self.privilege, "ip");
        c.args(["netns", "exec", &self.name, program]);
        Command::from(c)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = privileged(self.privilege, "ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `program`, run through `privilege` (nothing, or `sudo -n`).
fn privileged(privilege: &[&str], program: &str) -> std::process::Command {
    match privilege.split_first() {
        None => std::process::Command::new(program),
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg(program);
            c
        }
    }
}

fn ip(privilege: &[&str], args: &[&str]) {
    let out = privileged(privilege, "ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How this process may make network namespaces: as root (no prefix), through
/// `sudo -n`, or not at all (no `ip`, or neither).
fn namespace_privilege() -> Option<&'static [&'static str]> {
    let works = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works("ip", &["-V"]) {
        return None;
    }
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        Some(&[])
    } else if works("sudo", &["-n", "ip", "-V"]) {
        Some(&["sudo", "-n"])
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_an_interface_gains_is_printed_and_dialable_and_its_loss_reported() {
    let Some(privilege) = namespace_privilege() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs `ip` and root (or sudo without a password) to make a network namespace"
        );
        eprintln!("skipped: making a network namespace needs `ip` and root or sudo -n");
        return;
    };
    let ns = Namespace::create(privilege);
    let mut listener = ns
        .command(weft())
        .args(["listen", "--listen", "/ip4/0.0.0.0/tcp/0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("weft listen starts");
    let mut stdout = BufReader::new(listener.stdout.take().expect("piped")).lines();
    // stderr is drained all along (a full pipe would stall the listener's logging).
    let mut stderr = BufReader::new(listener.stderr.take().expect("piped")).lines();
    let (stderr_tx, mut stderr_lines) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            if stderr_tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .expect("weft listen printed its address in time")
        .unwrap()
        .expect("an address line");
    assert!(first.starts_with("/ip4/127.0.0.1/tcp/"), "{first}");
    let port = first.split('/').nth(4).unwrap().to_string();

    // A documentation address: never routed, and inside the namespace only.
    ns.run_ip(&["addr", "add", "198.51.100.7/32", "dev", "lo"]);
    // The maintenance tick (5 s by default) reads the interfaces again.
    let gained = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("the new address was printed within 30 s")
        .unwrap()
        .expect("an address line");
    let prefix = format!("/ip4/198.51.100.7/tcp/{port}/p2p/");
    assert!(gained.starts_with(&prefix), "{gained}");

    let dial = ns
        .command(weft())
        .args(["dial", &gained, "--ping", "1"])
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(WAIT, dial).await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "weft dial {gained} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    ns.run_ip(&["addr", "del", "198.51.100.7/32", "dev", "lo"]);
    let lost = format!("no longer listening on /ip4/198.51.100.7/tcp/{port}");
    let reported = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr_lines.recv().await {
            if line.contains(&lost) {
                return true;
            }
        }
        false
    })
    .await
    .expect("the lost address was reported within 30 s");
    assert!(reported, "weft listen ended without reporting {lost}");
    listener.kill().await.unwrap();
}
