//! One named network namespace (`ip netns add`), deleted on drop, and ways to act
//! inside it: `ip -n`, `nft -f`, programs under `ip netns exec`, and sockets made by a
//! thread that entered it (`setns`), which then work from any thread.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use super::LabError;

/// Where `ip netns add` mounts the namespaces it names.
const NETNS_DIR: &str = "/run/netns";

/// A network namespace of ours, deleted (with its interfaces) when dropped.
///
/// Processes still running inside keep the kernel's namespace alive until they exit;
/// the name is gone at once.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates the namespace `name` (at most 200 characters, no `/`) with its loopback
    /// interface up.
    pub fn create(name: &str) -> Result<Self, LabError> {
        run_ip(&["netns", "add", name])?;
        let ns = Self {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME args...`.
    pub fn ip(&self, args: &[&str]) -> Result<(), LabError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    /// Loads an nftables rule set (`nft -f -`) inside the namespace.
    pub fn nft(&self, ruleset: &str) -> Result<(), LabError> {
        let mut child = self
            .std_command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LabError::Spawn {
                program: "nft".into(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(ruleset.as_bytes())
                .map_err(|source| LabError::Spawn {
                    program: "nft".into(),
                    source,
                })?;
        }
        let output = child.wait_with_output().map_err(|source| LabError::Spawn {
            program: "nft".into(),
            source,
        })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(LabError::Command {
                command: format!("ip netns exec {} nft -f -", self.name),
                output: format!(
                    "{}\nrule set:\n{ruleset}",
                    String::from_utf8_lossy(&output.stderr).trim_end()
                ),
            })
        }
    }

    /// Sets a sysctl of this namespace, e.g. `("net/ipv4/ip_forward", "1")` (the path
    /// below `/proc/sys`, written by a thread inside the namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), LabError> {
        let path = Path::new("/proc/sys").join(key);
        let value = value.to_owned();
        self.run(move || std::fs::write(&path, value))
            .map_err(|source| LabError::Setup {
                what: format!("sysctl {key} in {}", self.name),
                source,
            })
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME
    /// program`; `ip` execs it, so the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(program)
            .kill_on_drop(true);
        command
    }

    /// [`command`](Self::command) for blocking code.
    pub fn std_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `program args...` inside the namespace to completion and returns its
    /// output; a run that outlives `limit` is killed and reported as
    /// [`LabError::Timeout`].
    pub async fn output<I, S>(
        &self,
        program: impl AsRef<OsStr>,
        args: I,
        limit: Duration,
    ) -> Result<Output, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.output_with_env(program, args, &[], limit).await
    }

    /// [`output`](Self::output), with `env` (name, value) set for the program besides
    /// what it inherits.
    pub async fn output_with_env<I, S>(
        &self,
        program: impl AsRef<OsStr>,
        args: I,
        env: &[(&str, &str)],
        limit: Duration,
    ) -> Result<Output, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let program = program.as_ref().to_owned();
        let child = self
            .command(&program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LabError::Spawn {
                program: program.to_string_lossy().into_owned(),
                source,
            })?;
        match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(output) => output.map_err(|source| LabError::Spawn {
                program: program.to_string_lossy().into_owned(),
                source,
            }),
            // Dropping the future drops the child, which kills it (kill_on_drop).
            Err(_) => Err(LabError::Timeout {
                what: format!("{} in {}", program.to_string_lossy(), self.name),
                limit,
            }),
        }
    }

    /// Runs `f` on a new thread that entered this namespace and returns its result.
    /// Sockets `f` makes belong to the namespace for life and may be used anywhere.
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let handle = File::open(Path::new(NETNS_DIR).join(&self.name))?;
        std::thread::spawn(move || {
            move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&handle),
                Some(LinkNameSpaceType::Network),
            )?;
            f()
        })
        .join()
        .map_err(|_| io::Error::other("the thread inside the namespace panicked"))?
    }

    /// A UDP socket bound to `addr` inside the namespace, non-blocking, for tokio.
    pub fn udp_socket(&self, addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
        let socket = self.run(move || {
            let socket = std::net::UdpSocket::bind(addr)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })?;
        tokio::net::UdpSocket::from_std(socket)
    }

    /// A TCP socket bound to `addr` inside the namespace, with `SO_REUSEADDR` and
    /// `SO_REUSEPORT` (so several sockets, a listener among them, may share the port,
    /// as hole punching needs), ready to `connect` or `listen` with tokio.
    pub fn tcp_socket(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpSocket> {
        let socket = self.run(move || {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            Ok(std::net::TcpStream::from(socket))
        })?;
        Ok(tokio::net::TcpSocket::from_std_stream(socket))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = run_ip(&["netns", "del", &self.name]) {
            tracing::warn!(namespace = %self.name, error = %e, "cannot delete the namespace");
        }
    }
}

/// Runs `ip args...`, failing with its stderr.
pub(super) fn run_ip(args: &[&str]) -> Result<(), LabError> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            program: "ip".into(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: format!("ip {}", args.join(" ")),
            output: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_owned(),
        })
    }
}

/// The namespaces `ip netns` knows, by name.
pub(super) fn list() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}
