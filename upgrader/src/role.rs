//! Which side of a connection we are.

/// Our role on a connection, for every protocol layered on it.
///
/// Normally the dialer is the [`Role::Initiator`]: the multistream-select initiator,
/// the Noise initiator / TLS client and the yamux client (odd stream ids). Hole
/// punching (DCUtR) and simultaneous open can assign the roles differently, so the
/// role is passed explicitly rather than derived from who dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that proposes protocols and starts handshakes.
    Initiator,
    /// The side that answers proposals and handshakes.
    Responder,
}

impl Role {
    /// The other role.
    pub fn opposite(self) -> Role {
        match self {
            Role::Initiator => Role::Responder,
            Role::Responder => Role::Initiator,
        }
    }
}
