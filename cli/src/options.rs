//! Options shared by the subcommands, and building a host from them.

use std::str::FromStr;
use std::sync::Arc;
use weft_host::{Host, HostBuilder, Keypair};
use weft_resource_manager::machine::Machine;
use weft_resource_manager::{Limits, ResourceManager, AUTO_MIN_MEMORY};
use weft_upgrader::SecurityUpgrade;

/// The least `--max-memory` accepted: below it not even one connection's handshake
/// and initial stream windows fit.
pub const MIN_MEMORY: u64 = 16 << 20;
/// The fewest `--max-fds` accepted: a listener and a connection.
pub const MIN_FDS: u64 = 2;

/// A security protocol the user can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `/noise`
    Noise,
    /// `/tls/1.0.0`
    Tls,
}

impl Security {
    /// Every choice, in the default order of preference.
    pub const ALL: [Security; 2] = [Security::Noise, Security::Tls];
}

impl FromStr for Security {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "noise" => Ok(Security::Noise),
            "tls" => Ok(Security::Tls),
            other => Err(format!(
                "unknown security protocol {other:?} (choose noise or tls)"
            )),
        }
    }
}

/// An ordered list of security protocols, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityList(pub Vec<Security>);

/// Parses `noise,tls` into an ordered, de-duplicated list.
pub fn parse_security_list(s: &str) -> Result<SecurityList, String> {
    let mut list = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let sec: Security = part.parse()?;
        if !list.contains(&sec) {
            list.push(sec);
        }
    }
    if list.is_empty() {
        return Err("give at least one security protocol (noise, tls)".into());
    }
    Ok(SecurityList(list))
}

/// Parses a 32-byte Ed25519 secret in hex into a keypair.
pub fn keypair_from_seed(seed: &str) -> Result<Keypair, String> {
    let bytes = hex::decode(seed.trim()).map_err(|e| format!("--seed is not hex: {e}"))?;
    if bytes.len() != 32 {
        return Err(format!(
            "--seed must be 32 bytes (64 hex digits), got {} bytes",
            bytes.len()
        ));
    }
    Keypair::ed25519_from_bytes(bytes)
        .map_err(|e| format!("--seed is not a valid Ed25519 secret: {e}"))
}

/// The identity: from `--seed`, or fresh.
pub fn keypair(seed: Option<&str>) -> Result<Keypair, String> {
    match seed {
        Some(s) => keypair_from_seed(s),
        None => Ok(Keypair::generate_ed25519()),
    }
}

fn security_impl(sec: Security, keypair: &Keypair) -> Result<Arc<dyn SecurityUpgrade>, String> {
    Ok(match sec {
        Security::Noise => {
            Arc::new(weft_security_noise::Noise::new(keypair).map_err(|e| e.to_string())?)
        }
        Security::Tls => Arc::new(weft_security_tls::TlsUpgrade::new(keypair.clone())),
    })
}

/// Parses a memory size: bytes (`67108864`) or with a unit (`64MiB`, `1.5 GiB`, `500MB`).
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = s
        .trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a memory size such as 512MiB or 2GiB: {e}"))?;
    let bytes = size.as_u64();
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{s:?} is too little memory: weft needs at least {} for one connection",
            bytesize::ByteSize::b(MIN_MEMORY).display().iec()
        ));
    }
    Ok(bytes)
}

/// The resource limits for `--max-memory` and `--max-fds` on this machine: what is not
/// given is [`Limits::auto`]'s share (1/8 of the memory, half of the open-files limit).
pub fn limits(max_memory: Option<u64>, max_fds: Option<u64>) -> Result<Limits, String> {
    limits_for(Machine::detect(), max_memory, max_fds)
}

/// [`limits`] for the given machine facts.
pub fn limits_for(
    machine: Machine,
    max_memory: Option<u64>,
    max_fds: Option<u64>,
) -> Result<Limits, String> {
    if max_memory.is_none() && max_fds.is_none() {
        return Ok(Limits::for_machine(machine));
    }
    let memory = max_memory.unwrap_or_else(|| (machine.memory / 8).max(AUTO_MIN_MEMORY));
    let fds = match max_fds {
        None => machine.fds / 2,
        Some(n) if n < MIN_FDS => {
            return Err(format!("--max-fds {n} is too few: give at least {MIN_FDS}"));
        }
        Some(n) if n > machine.fds => {
            return Err(format!(
                "--max-fds {n} is above this process's open-files limit of {}; raise it \
                 (ulimit -n) or give at most {}",
                machine.fds, machine.fds
            ));
        }
        Some(n) => n,
    };
    Ok(Limits::scaled(memory, fds))
}

/// Builds a host with these security protocols (in order), yamux, and the defaults.
pub fn build_host(keypair: Keypair, security: &[Security], lazy: bool) -> Result<Host, String> {
    build_host_within(keypair, security, lazy, Limits::auto())
}

/// [`build_host`] with its resource manager held to `limits`.
pub fn build_host_within(
    keypair: Keypair,
    security: &[Security],
    lazy: bool,
    limits: Limits,
) -> Result<Host, String> {
    build_host_with(keypair, security, lazy, limits, |b| b)
}

/// [`build_host_within`], with `configure` applied to the builder last.
pub fn build_host_with(
    keypair: Keypair,
    security: &[Security],
    lazy: bool,
    limits: Limits,
    configure: impl FnOnce(HostBuilder) -> HostBuilder,
) -> Result<Host, String> {
    let mut builder = Host::builder()
        .resource_manager(ResourceManager::new(limits))
        .lazy_negotiation(lazy)
        .agent_version(concat!("weft/", env!("CARGO_PKG_VERSION")));
    for sec in security {
        builder = builder.security(security_impl(*sec, &keypair)?);
    }
    configure(builder.keypair(keypair))
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_security_lists() {
        assert_eq!(
            parse_security_list("noise,tls").unwrap().0,
            vec![Security::Noise, Security::Tls]
        );
        assert_eq!(
            parse_security_list("TLS, noise,tls").unwrap().0,
            vec![Security::Tls, Security::Noise]
        );
        assert!(parse_security_list("quic").is_err());
        assert!(parse_security_list("").is_err());
    }

    #[test]
    fn parses_memory_sizes() {
        assert_eq!(parse_memory("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1.5 GiB").unwrap(), 3 << 29);
        assert_eq!(parse_memory("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_memory("33554432").unwrap(), 32 << 20);
        let small = parse_memory("1MiB").unwrap_err();
        assert!(small.contains("too little"), "{small}");
        let junk = parse_memory("lots").unwrap_err();
        assert!(junk.contains("not a memory size"), "{junk}");
    }

    #[test]
    fn limits_follow_the_knobs_and_refuse_what_cannot_be() {
        let machine = Machine {
            memory: 16 << 30,
            fds: 1024,
        };
        assert_eq!(
            limits_for(machine, None, None).unwrap(),
            Limits::for_machine(machine)
        );
        let both = limits_for(machine, Some(256 << 20), Some(100)).unwrap();
        assert_eq!(both, Limits::scaled(256 << 20, 100));
        assert_eq!(both.system.memory, 256 << 20);
        assert_eq!(both.system.fds, 100);
        let fds_only = limits_for(machine, None, Some(64)).unwrap();
        assert_eq!(fds_only, Limits::scaled(2 << 30, 64));
        let memory_only = limits_for(machine, Some(1 << 30), None).unwrap();
        assert_eq!(memory_only, Limits::scaled(1 << 30, 512));
        let above = limits_for(machine, None, Some(4096)).unwrap_err();
        assert!(above.contains("open-files limit of 1024"), "{above}");
        assert!(limits_for(machine, None, Some(1)).is_err());
    }

    #[test]
    fn seeds_give_reproducible_ids() {
        let seed = "00".repeat(32);
        let a = keypair_from_seed(&seed).unwrap().public().to_peer_id();
        let b = keypair_from_seed(&seed).unwrap().public().to_peer_id();
        assert_eq!(a, b);
        assert!(keypair_from_seed("abc").is_err());
        assert!(keypair_from_seed(&"00".repeat(31)).is_err());
    }
}
