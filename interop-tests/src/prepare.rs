//! Builds or installs each reference peer once per build (and once per process).
//!
//! - go: `go build` into `target/interop/go-peer`, skipped when the binary is newer than
//!   every `*.go` file, `go.mod` and `go.sum` (`go build` fetches modules itself; `go.sum` is
//!   complete, so no `-mod=mod` is needed).
//! - js: `npm install` (of the locked versions) in `peers/js` when `node_modules` is missing or older than
//!   `package-lock.json`.
//! - rust: the `rust-libp2p-peer` example next to the running test binary, built with
//!   `cargo build --example` when missing or older than its sources.
//!
//! A process-wide [`OnceLock`] per implementation serialises test threads; a lock file
//! in `target/interop/` serialises processes; outputs are renamed into place, so a
//! reader never sees half a binary.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::command::PeerCommand;
use crate::error::{HarnessError, Result};
use crate::participant::Impl;
use crate::paths;

/// How long one build or install step may take (a fresh machine downloads go-libp2p).
const STEP_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// A lock file older than this was left by a dead process.
const STALE_LOCK: Duration = Duration::from_secs(20 * 60);

/// Builds or installs the peer of `imp` if needed and returns how to run it.
///
/// Blocking (it may run `go build`, `npm install` or `cargo build` for minutes on a fresh
/// machine); async callers should use [`prepare_async`]. The outcome, success or
/// failure, is cached for the life of the process.
pub fn prepare(imp: Impl) -> Result<PeerCommand> {
    static GO: OnceLock<Result<PeerCommand, String>> = OnceLock::new();
    static JS: OnceLock<Result<PeerCommand, String>> = OnceLock::new();
    static RUST: OnceLock<Result<PeerCommand, String>> = OnceLock::new();
    let cell = match imp {
        Impl::Go => &GO,
        Impl::Js => &JS,
        Impl::Rust => &RUST,
    };
    cell.get_or_init(|| {
        let started = Instant::now();
        let result = match imp {
            Impl::Go => prepare_go(),
            Impl::Js => prepare_js(),
            Impl::Rust => prepare_rust(),
        };
        tracing::debug!(%imp, elapsed = ?started.elapsed(), ok = result.is_ok(), "peer prepared");
        result.map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|message| HarnessError::Prepare {
        participant: imp.name().to_owned(),
        message,
    })
}

/// [`prepare`] on tokio's blocking pool.
pub async fn prepare_async(imp: Impl) -> Result<PeerCommand> {
    tokio::task::spawn_blocking(move || prepare(imp))
        .await
        .map_err(|e| HarnessError::Prepare {
            participant: imp.name().to_owned(),
            message: format!("preparation task failed: {e}"),
        })?
}

fn prepare_go() -> Result<PeerCommand, String> {
    let src = paths::peer_source_dir("go");
    let out_dir = paths::harness_dir();
    fs::create_dir_all(&out_dir).map_err(|e| format!("create {}: {e}", out_dir.display()))?;
    let binary = out_dir.join("go-peer");
    let mut inputs: Vec<PathBuf> = ["go.mod", "go.sum"].map(|f| src.join(f)).into();
    inputs.extend(files_with_extension(&src, "go"));
    let command =
        || PeerCommand::new(Impl::Go.name(), &binary).with_agent_version(Impl::Go.agent_version());
    if is_newer_than_all(&binary, &inputs) {
        return Ok(command());
    }
    let _lock = FileLock::acquire(&out_dir.join("go-peer.lock"))?;
    if is_newer_than_all(&binary, &inputs) {
        return Ok(command()); // another process built it while we waited
    }
    let tmp = out_dir.join(format!("go-peer.tmp-{}", std::process::id()));
    let mut cmd = Command::new("go");
    cmd.args(["build", "-buildvcs=false", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&src);
    run_step(cmd, "go build")?;
    fs::rename(&tmp, &binary).map_err(|e| format!("rename go binary: {e}"))?;
    Ok(command())
}

fn prepare_js() -> Result<PeerCommand, String> {
    let src = paths::peer_source_dir("js");
    let lockfile = src.join("package-lock.json");
    // npm writes this file at the end of every install.
    let marker = src.join("node_modules").join(".package-lock.json");
    let command = || {
        PeerCommand::new(Impl::Js.name(), "node")
            .arg(src.join("peer.mjs"))
            .with_agent_version(Impl::Js.agent_version())
    };
    if is_newer_than_all(&marker, std::slice::from_ref(&lockfile)) {
        return Ok(command());
    }
    let out_dir = paths::harness_dir();
    fs::create_dir_all(&out_dir).map_err(|e| format!("create {}: {e}", out_dir.display()))?;
    let _lock = FileLock::acquire(&out_dir.join("npm-ci.lock"))?;
    if is_newer_than_all(&marker, std::slice::from_ref(&lockfile)) {
        return Ok(command());
    }
    // `npm install`, not `npm ci`: `@chainsafe/libp2p-quic` lists a prebuilt binary per
    // platform as optional dependencies, and the registry mirror here serves only
    // linux-x64-gnu, so the lock file has no entry for the others and `npm ci`
    // refuses it as out of sync. `npm install` installs the locked versions, skips
    // the optional packages it cannot fetch and leaves the lock file as it is.
    let mut cmd = Command::new("npm");
    cmd.args(["install", "--no-audit", "--no-fund"])
        .current_dir(&src);
    run_step(cmd, "npm install")?;
    Ok(command())
}

fn prepare_rust() -> Result<PeerCommand, String> {
    let binary = build_example("rust-libp2p-peer", "rust")?;
    Ok(PeerCommand::new(Impl::Rust.name(), &binary).with_agent_version(Impl::Rust.agent_version()))
}

/// The example `name` of this package (sources in `peers/<source_dir>`), built next to
/// the running program when missing or older than its sources.
fn build_example(name: &str, source_dir: &str) -> Result<PathBuf, String> {
    let profile_dir = paths::profile_dir();
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut inputs = rust_sources(&paths::peer_source_dir(source_dir));
    inputs.extend(rust_sources(&paths::peer_source_dir("rust")));
    inputs.extend(rust_sources(&paths::interop_dir().join("src")));
    inputs.push(paths::interop_dir().join("Cargo.toml"));
    if is_newer_than_all(&binary, &inputs) {
        return Ok(binary);
    }
    let mut cmd = cargo_build(&profile_dir);
    cmd.args(["--example", name, "-p", "weft-interop-tests"]);
    // cargo takes its own lock on the target directory.
    run_step(cmd, &format!("cargo build --example {name}"))?;
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!("cargo built no {}", binary.display()))
    }
}

/// `cargo build` into our target directory, with `--release` when we run from it.
///
/// The variables cargo sets for a running test or bench (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, ...) are removed: build scripts that declare
/// `rerun-if-env-changed` on them (ring does) would otherwise be rebuilt by this
/// build and again by the next plain `cargo test`, back and forth.
fn cargo_build(profile_dir: &Path) -> Command {
    let mut cmd = cargo_command("build");
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    cmd
}

/// `cargo SUBCOMMAND` into our target directory, from this package's directory, with
/// the variables of a running test removed (see [`cargo_build`]).
fn cargo_command(subcommand: &str) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let set_by_cargo = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || name == "OUT_DIR";
        if set_by_cargo {
            cmd.env_remove(name);
        }
    }
    cmd.arg(subcommand)
        .env("CARGO_TARGET_DIR", paths::target_dir())
        .current_dir(paths::interop_dir());
    cmd
}

/// The sources of every crate of the workspace but this one (`*/src`, two levels
/// deep as [`rust_sources`] reads them, and `src/*/*/` below that), their manifests
/// and READMEs, and the lock file: what the `weft` binary is built from. (This
/// package is left out: `weft` does not depend on it, so cargo does not relink `weft`
/// when it changes.)
fn workspace_sources() -> Vec<PathBuf> {
    let Some(root) = paths::interop_dir().parent() else {
        return Vec::new();
    };
    let mut inputs = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    let Ok(crates) = fs::read_dir(root) else {
        return inputs;
    };
    for krate in crates.flatten().map(|e| e.path()) {
        let manifest = krate.join("Cargo.toml");
        if !manifest.exists() || krate == paths::interop_dir() {
            continue;
        }
        inputs.push(manifest);
        let src = krate.join("src");
        inputs.extend(rust_sources(&src));
        if let Ok(dirs) = fs::read_dir(&src) {
            for dir in dirs.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
                if let Ok(subdirs) = fs::read_dir(&dir) {
                    for sub in subdirs.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
                        inputs.extend(rust_sources(&sub));
                    }
                }
            }
        }
        inputs.push(krate.join("README.md"));
    }
    inputs
}

/// The rust-libp2p attacker (`peers/rust-attacker`, the `rust-libp2p-attacker`
/// example), built once per process when missing or older than its sources.
///
/// Blocking, like [`prepare`]; the outcome is cached for the life of the process.
pub fn prepare_attacker() -> Result<PathBuf> {
    static ATTACKER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ATTACKER
        .get_or_init(|| build_example("rust-libp2p-attacker", "rust-attacker"))
        .clone()
        .map_err(|message| HarnessError::Prepare {
            participant: "rust-libp2p-attacker".to_owned(),
            message,
        })
}

/// The rust-libp2p relay server (`peers/rust-relay`, the `rust-libp2p-relay`
/// example), built once per process when missing or older than its sources.
///
/// Blocking, like [`prepare`]; the outcome is cached for the life of the process.
pub fn prepare_rust_relay() -> Result<PathBuf> {
    static RELAY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    RELAY
        .get_or_init(|| build_example("rust-libp2p-relay", "rust-relay"))
        .clone()
        .map_err(|message| HarnessError::Prepare {
            participant: "rust-libp2p-relay".to_owned(),
            message,
        })
}

/// The rust-libp2p relay client (`peers/rust-relay-client`, the
/// `rust-libp2p-relay-client` example), built once per process when missing or older
/// than its sources.
///
/// Blocking, like [`prepare`]; the outcome is cached for the life of the process.
pub fn prepare_rust_relay_client() -> Result<PathBuf> {
    static CLIENT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| build_example("rust-libp2p-relay-client", "rust-relay-client"))
        .clone()
        .map_err(|message| HarnessError::Prepare {
            participant: "rust-libp2p-relay-client".to_owned(),
            message,
        })
}

/// The rust-libp2p DCUtR peer (`peers/rust-dcutr`, the `rust-libp2p-dcutr`
/// example), built once per process when missing or older than its sources.
///
/// Blocking, like [`prepare`]; the outcome is cached for the life of the process.
pub fn prepare_rust_dcutr() -> Result<PathBuf> {
    static DCUTR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DCUTR
        .get_or_init(|| build_example("rust-libp2p-dcutr", "rust-dcutr"))
        .clone()
        .map_err(|message| HarnessError::Prepare {
            participant: "rust-libp2p-dcutr".to_owned(),
            message,
        })
}

/// The `weft` command-line binary of this build (`cli/`, package `weft-cli`).
///
/// Used as it is when it is newer than every source of the workspace; otherwise built,
/// once per process. In a debug build that is `cargo test --workspace --no-run`, the
/// README's test command without running: it builds `weft` for the CLI's own tests with
/// the workspace's features, so during `cargo test --workspace` the binary is already
/// there, and nothing is rebuilt with other features and back again (a
/// `cargo build -p weft-cli` unifies features differently, which cost a rebuild of
/// the host and the CLI in every test run). From a release build (benchmarks) it is
/// `cargo build --release -p weft-cli --bin weft`.
/// Blocking, like [`prepare`]; the outcome is cached for the life of the process.
pub fn prepare_weft_cli() -> Result<PathBuf> {
    static WEFT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    WEFT.get_or_init(|| {
        let profile_dir = paths::profile_dir();
        let binary = profile_dir.join(format!("weft{}", std::env::consts::EXE_SUFFIX));
        if is_newer_than_all(&binary, &workspace_sources()) {
            return Ok(binary);
        }
        let (cmd, what) = if profile_dir.file_name().is_some_and(|n| n == "release") {
            let mut cmd = cargo_build(&profile_dir);
            cmd.args(["-p", "weft-cli", "--bin", "weft"]);
            (cmd, "cargo build --release -p weft-cli --bin weft")
        } else {
            let mut cmd = cargo_command("test");
            cmd.args(["--workspace", "--no-run"]);
            (cmd, "cargo test --workspace --no-run")
        };
        run_step(cmd, what)?;
        if binary.exists() {
            Ok(binary)
        } else {
            Err(format!("cargo built no {}", binary.display()))
        }
    })
    .clone()
    .map_err(|message| HarnessError::Prepare {
        participant: "weft".to_owned(),
        message,
    })
}

/// Files directly in `dir` whose extension is `ext`.
fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default()
}

/// `*.rs` files directly in `dir` and one level below.
fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Ok(inner) = fs::read_dir(&path) {
                out.extend(
                    inner
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "rs")),
                );
            }
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    out
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether `output` exists and is at least as new as every existing input.
fn is_newer_than_all(output: &Path, inputs: &[PathBuf]) -> bool {
    let Some(out_time) = modified(output) else {
        return false;
    };
    inputs
        .iter()
        .filter_map(|p| modified(p))
        .all(|t| t <= out_time)
}

/// Runs one build step with a timeout, returning its output in the error.
fn run_step(mut cmd: Command, what: &str) -> Result<(), String> {
    let stdout = tempfile_path(what, "out");
    let stderr = tempfile_path(what, "err");
    let open = |p: &Path| fs::File::create(p).map_err(|e| format!("create {}: {e}", p.display()));
    cmd.stdin(Stdio::null())
        .stdout(open(&stdout)?)
        .stderr(open(&stderr)?);
    eprintln!("interop harness: running {what} (once per build)");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > STEP_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: timed out after {STEP_TIMEOUT:?}"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("{what}: wait failed: {e}")),
        }
    };
    let output = format!(
        "{}{}",
        fs::read_to_string(&stdout).unwrap_or_default(),
        fs::read_to_string(&stderr).unwrap_or_default()
    );
    let _ = fs::remove_file(&stdout);
    let _ = fs::remove_file(&stderr);
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status}):\n{output}"))
    }
}

fn tempfile_path(what: &str, suffix: &str) -> PathBuf {
    let name: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    std::env::temp_dir().join(format!(
        "weft-interop-{name}-{}.{suffix}",
        std::process::id()
    ))
}

/// A lock file created with `create_new`, removed on drop.
struct FileLock {
    path: PathBuf,
}

impl FileLock {
    fn acquire(path: &Path) -> Result<Self, String> {
        let started = Instant::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => {
                    return Ok(Self {
                        path: path.to_path_buf(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = modified(path)
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_LOCK);
                    if stale {
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    if started.elapsed() > STEP_TIMEOUT {
                        return Err(format!("timed out waiting for {}", path.display()));
                    }
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(format!("lock {}: {e}", path.display())),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
