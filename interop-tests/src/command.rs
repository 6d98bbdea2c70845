//! A peer program that follows the interop contract, as a command to run.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use multiaddr::Multiaddr;

use crate::participant::{Security, Transport};

/// How to run one participant: a program plus leading arguments, to which the
/// contract's `listen ...` / `dial ...` arguments are appended.
///
/// The three reference peers come from [`prepare`](crate::prepare); any other program
/// that follows the contract (e.g. weft's own CLI, `weft listen` / `weft dial`) can be
/// described with [`PeerCommand::new`] and used with the same harness functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCommand {
    /// A short name for messages, e.g. `"go-libp2p"`.
    pub label: String,
    /// The program to run.
    pub program: PathBuf,
    /// Arguments placed before the contract's arguments (e.g. the script path for node).
    pub leading_args: Vec<OsString>,
    /// The expected identify agent version, when known (checked by tests).
    pub agent_version: Option<String>,
}

impl PeerCommand {
    /// A participant run as `program [leading_args...] listen|dial ...`.
    pub fn new(label: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        Self {
            label: label.into(),
            program: program.into(),
            leading_args: Vec::new(),
            agent_version: None,
        }
    }

    /// Adds a leading argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.leading_args.push(arg.into());
        self
    }

    /// Sets the expected agent version.
    pub fn with_agent_version(mut self, agent_version: impl Into<String>) -> Self {
        self.agent_version = Some(agent_version.into());
        self
    }

    /// `listen --security S --ip IP --port PORT`.
    pub fn listen_args(&self, security: Security, ip: Ipv4Addr, port: u16) -> Vec<OsString> {
        let mut args = self.leading_args.clone();
        args.extend(
            [
                "listen".to_owned(),
                "--security".to_owned(),
                security.as_arg().to_owned(),
                "--ip".to_owned(),
                ip.to_string(),
                "--port".to_owned(),
                port.to_string(),
            ]
            .map(OsString::from),
        );
        args
    }

    /// `listen --security S --ip IP --port PORT --transport T`: the same, on a chosen
    /// transport (the QUIC cells; every reference peer takes `--transport tcp|quic`).
    pub fn listen_args_on(
        &self,
        transport: Transport,
        security: Security,
        ip: Ipv4Addr,
        port: u16,
    ) -> Vec<OsString> {
        let mut args = self.listen_args(security, ip, port);
        args.extend(["--transport", transport.as_arg()].map(OsString::from));
        args
    }

    /// `dial ADDR --security S --echo-bytes N --timeout-secs T`.
    pub fn dial_args(
        &self,
        addr: &Multiaddr,
        security: Security,
        echo_bytes: u64,
        timeout_secs: u64,
    ) -> Vec<OsString> {
        let mut args = self.leading_args.clone();
        args.extend(
            [
                "dial".to_owned(),
                addr.to_string(),
                "--security".to_owned(),
                security.as_arg().to_owned(),
                "--echo-bytes".to_owned(),
                echo_bytes.to_string(),
                "--timeout-secs".to_owned(),
                timeout_secs.to_string(),
            ]
            .map(OsString::from),
        );
        args
    }
}
