//! Options shared by the subcommands, and building a host from them.

use std::str::FromStr;
use std::sync::Arc;
use weft_host::{Host, HostBuilder, Keypair};
use weft_upgrader::SecurityUpgrade;

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

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Security::Noise => "noise",
            Security::Tls => "tls",
        }
    }
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

/// Builds a host with these security protocols (in order), yamux, and the defaults.
pub fn build_host(keypair: Keypair, security: &[Security], lazy: bool) -> Result<Host, String> {
    build_host_with(keypair, security, lazy, |b| b)
}

/// [`build_host`], with `configure` applied to the builder last.
pub fn build_host_with(
    keypair: Keypair,
    security: &[Security],
    lazy: bool,
    configure: impl FnOnce(HostBuilder) -> HostBuilder,
) -> Result<Host, String> {
    let mut builder = Host::builder()
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
    fn seeds_give_reproducible_ids() {
        let seed = "00".repeat(32);
        let a = keypair_from_seed(&seed).unwrap().public().to_peer_id();
        let b = keypair_from_seed(&seed).unwrap().public().to_peer_id();
        assert_eq!(a, b);
        assert!(keypair_from_seed("abc").is_err());
        assert!(keypair_from_seed(&"00".repeat(31)).is_err());
    }
}
