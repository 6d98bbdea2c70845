//! [`Resolver`] on `hickory-resolver` (feature `dns`).

use super::dns::{DnsError, Resolver};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};

/// A [`Resolver`] backed by a hickory [`TokioResolver`] (with its cache).
#[derive(Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HickoryResolver").finish_non_exhaustive()
    }
}

fn lookup_error(name: &str, e: impl std::fmt::Display) -> DnsError {
    DnsError::Lookup {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

/// Names in multiaddrs are absolute: a trailing dot keeps the search list out.
fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

impl HickoryResolver {
    /// Wraps a resolver built elsewhere.
    pub fn new(inner: TokioResolver) -> Self {
        HickoryResolver { inner }
    }

    /// A resolver with the operating system's configuration (`/etc/resolv.conf` on
    /// Unix).
    ///
    /// # Errors
    ///
    /// [`DnsError::Lookup`] when the configuration cannot be read.
    pub fn from_system_conf() -> Result<Self, DnsError> {
        let builder =
            TokioResolver::builder_tokio().map_err(|e| lookup_error("system configuration", e))?;
        let inner = builder
            .build()
            .map_err(|e| lookup_error("system configuration", e))?;
        Ok(HickoryResolver { inner })
    }

    /// A resolver that asks these servers, over UDP and (for answers too long for
    /// UDP) TCP: a private DNS server, or one a test started.
    ///
    /// # Errors
    ///
    /// [`DnsError::Lookup`] when the resolver cannot be built.
    pub fn with_name_servers(servers: &[SocketAddr]) -> Result<Self, DnsError> {
        let name_servers = servers
            .iter()
            .map(|s| {
                let mut udp = ConnectionConfig::udp();
                udp.port = s.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = s.port();
                NameServerConfig::new(s.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .build()
            .map_err(|e| lookup_error("name server configuration", e))?;
        Ok(HickoryResolver { inner })
    }
}

#[async_trait::async_trait]
impl Resolver for HickoryResolver {
    async fn lookup_ip(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let found = self
            .inner
            .lookup_ip(absolute(name))
            .await
            .map_err(|e| lookup_error(name, e))?;
        Ok(found.iter().collect())
    }

    async fn lookup_txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let found = self
            .inner
            .txt_lookup(absolute(name))
            .await
            .map_err(|e| lookup_error(name, e))?;
        let mut records = Vec::new();
        for record in found.answers() {
            if let RData::TXT(txt) = &record.data {
                let mut text = Vec::new();
                for chunk in txt.txt_data.iter() {
                    text.extend_from_slice(chunk);
                }
                // A record that is not UTF-8 is no multiaddr.
                if let Ok(text) = String::from_utf8(text) {
                    records.push(text);
                }
            }
        }
        Ok(records)
    }
}
