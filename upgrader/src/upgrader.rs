//! The upgrade pipeline: raw stream → security → muxer → [`Connection`].

use crate::budget::Budget;
use crate::builder::UpgraderBuilder;
use crate::connection::Connection;
use crate::error::{UpgradeError, UpgradeStep};
use crate::io::BoxedIo;
use crate::muxer::{Muxed, StreamMuxer};
use crate::role::Role;
use crate::security::{SecuredConnection, SecurityError, SecurityUpgrade};
use crate::step::StepTracker;
use futures::io::AsyncWriteExt;
use libp2p_identity::PeerId;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use weft_mss::{NegotiationError, Protocols, SimOpenRole, Version};

/// Turns raw byte streams into [`Connection`]s: multistream-select of a security
/// protocol, its handshake, the muxer (inside the handshake when both sides
/// support it, else multistream-select over the secure channel), then the muxer.
///
/// Cheap to clone; one upgrader serves every connection of a host. The upgrade
/// futures need a tokio runtime for their timeout.
///
/// ```no_run
/// # async fn example(
/// #     noise: std::sync::Arc<dyn weft_upgrader::SecurityUpgrade>,
/// #     yamux: std::sync::Arc<dyn weft_upgrader::StreamMuxer>,
/// #     tcp: weft_upgrader::BoxedIo,
/// # ) -> Result<(), weft_upgrader::UpgradeError> {
/// use weft_upgrader::Upgrader;
///
/// let upgrader = Upgrader::builder().security(noise).muxer(yamux).build()?;
/// let connection = upgrader.upgrade_outbound(tcp, None).await?;
/// tokio::spawn(connection.driver);
/// let stream = connection.muxed.open_stream().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Upgrader {
    settings: Arc<Settings>,
}

/// What an [`UpgraderBuilder`] checked and hands over.
pub(crate) struct Settings {
    pub(crate) security: Vec<Arc<dyn SecurityUpgrade>>,
    pub(crate) muxers: Vec<Arc<dyn StreamMuxer>>,
    pub(crate) timeout: Duration,
    pub(crate) inline_muxer_negotiation: bool,
    pub(crate) lazy: bool,
    pub(crate) mss_config: weft_mss::Config,
}

/// How the security protocol gets chosen.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// We play this role from the first byte.
    As(Role),
    /// Simultaneous open decides the role.
    SimultaneousOpen,
    /// Respond if the remote speaks within this long, else initiate.
    RespondUnlessSilent(std::time::Duration),
}

impl Upgrader {
    /// Starts configuring an upgrader.
    pub fn builder() -> UpgraderBuilder {
        UpgraderBuilder::default()
    }

    pub(crate) fn from_settings(settings: Settings) -> Self {
        Upgrader {
            settings: Arc::new(settings),
        }
    }

    /// The security protocol ids, in preference order.
    pub fn security_protocols(&self) -> Vec<String> {
        self.security_ids()
    }

    /// The muxer protocol ids, in preference order.
    pub fn muxer_protocols(&self) -> Vec<String> {
        self.muxer_ids()
    }

    /// The overall timeout of one upgrade.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// Upgrades a stream we dialed: we are the initiator. With `expected`, the
    /// handshake must prove that peer.
    ///
    /// # Errors
    ///
    /// An [`UpgradeError`] naming the failed step, or [`UpgradeError::Timeout`].
    pub async fn upgrade_outbound(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
    ) -> Result<Connection, UpgradeError> {
        self.upgrade(io, Role::Initiator, expected).await
    }

    /// [`upgrade_outbound`](Self::upgrade_outbound), charging the connection's
    /// buffers (security read buffers, muxer windows) to `budget`.
    ///
    /// # Errors
    ///
    /// As [`Upgrader::upgrade_outbound`].
    pub async fn upgrade_outbound_with_budget(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
        budget: Budget,
    ) -> Result<Connection, UpgradeError> {
        self.run(io, Start::As(Role::Initiator), expected, budget)
            .await
    }

    /// Upgrades a stream we accepted: we are the responder.
    ///
    /// # Errors
    ///
    /// An [`UpgradeError`] naming the failed step, or [`UpgradeError::Timeout`].
    pub async fn upgrade_inbound(&self, io: BoxedIo) -> Result<Connection, UpgradeError> {
        self.upgrade(io, Role::Responder, None).await
    }

    /// [`upgrade_inbound`](Self::upgrade_inbound), charging the connection's
    /// buffers (security read buffers, muxer windows) to `budget`.
    ///
    /// # Errors
    ///
    /// As [`Upgrader::upgrade_inbound`].
    pub async fn upgrade_inbound_with_budget(
        &self,
        io: BoxedIo,
        budget: Budget,
    ) -> Result<Connection, UpgradeError> {
        self.run(io, Start::As(Role::Responder), None, budget).await
    }

    /// Upgrades a stream in the given role, whoever dialed it: hole punching (DCUtR)
    /// assigns the roles this way. With `expected`, the handshake must prove that
    /// peer (checked after the handshake when we are the responder).
    ///
    /// # Errors
    ///
    /// An [`UpgradeError`] naming the failed step, or [`UpgradeError::Timeout`].
    pub async fn upgrade(
        &self,
        io: BoxedIo,
        role: Role,
        expected: Option<PeerId>,
    ) -> Result<Connection, UpgradeError> {
        self.run(io, Start::As(role), expected, Budget::unlimited())
            .await
    }

    /// [`upgrade`](Self::upgrade), charging the connection's buffers to `budget`.
    ///
    /// # Errors
    ///
    /// As [`Upgrader::upgrade`].
    pub async fn upgrade_with_budget(
        &self,
        io: BoxedIo,
        role: Role,
        expected: Option<PeerId>,
        budget: Budget,
    ) -> Result<Connection, UpgradeError> {
        self.run(io, Start::As(role), expected, budget).await
    }

    /// Upgrades as the [`Role::Responder`] a connection whose remote should speak
    /// first, unless it says nothing within `silence`: then we initiate, charging the
    /// connection's buffers to `budget`.
    ///
    /// For a hole punch over TCP that assigned us the responder role: our SYN can
    /// reach the remote's listening socket before its own SYN leaves (its NAT let it
    /// in), and a remote that is not weft then takes the connection as an ordinary
    /// inbound one, a listener waiting for a dialer to speak. Two responders would wait
    /// for each other until the upgrade timeout; leading after a silence makes the
    /// connection. `silence` should exceed the round trip, so that a remote that did
    /// take the initiator role has been heard by then.
    ///
    /// # Errors
    ///
    /// As [`Upgrader::upgrade`].
    pub async fn upgrade_responding_unless_silent(
        &self,
        io: BoxedIo,
        silence: std::time::Duration,
        expected: Option<PeerId>,
        budget: Budget,
    ) -> Result<Connection, UpgradeError> {
        self.run(io, Start::RespondUnlessSilent(silence), expected, budget)
            .await
    }

    /// Upgrades a stream we dialed while the remote may have dialed us on the same
    /// socket pair (TCP simultaneous open): the deprecated
    /// `/libp2p/simultaneous-connect` extension of multistream-select picks one
    /// initiator, and the rest of the upgrade runs in the role it yields
    /// ([`Connection::role`]). Against a plain listener we end as the initiator.
    ///
    /// Opt-in: rust-libp2p and current go-libp2p do not speak the extension as
    /// listeners' peers in a simultaneous open; prefer [`Upgrader::upgrade`] with a
    /// role assigned by DCUtR.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::SimultaneousOpen`] when no initiator could be chosen (both
    /// drew the same number: retry on a new connection), else as
    /// [`Upgrader::upgrade`].
    pub async fn upgrade_simultaneous_open(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
    ) -> Result<Connection, UpgradeError> {
        self.run(io, Start::SimultaneousOpen, expected, Budget::unlimited())
            .await
    }

    async fn run(
        &self,
        io: BoxedIo,
        start: Start,
        expected: Option<PeerId>,
        budget: Budget,
    ) -> Result<Connection, UpgradeError> {
        let after = self.settings.timeout;
        let steps = StepTracker::new();
        let span = tracing::debug_span!("upgrade", ?start, expected = ?expected);
        let result = async {
            match tokio::time::timeout(after, self.pipeline(io, start, expected, budget, &steps))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(UpgradeError::Timeout {
                    step: steps.get(),
                    after,
                }),
            }
        }
        .instrument(span.clone())
        .await;
        let _entered = span.enter();
        match &result {
            Ok(connection) => tracing::debug!(
                peer = %connection.remote_peer,
                role = ?connection.role,
                security = %connection.security_protocol,
                muxer = %connection.muxer_protocol,
                inlined = connection.muxer_inlined,
                "upgrade complete"
            ),
            Err(error) => tracing::debug!(%error, "upgrade failed"),
        }
        result
    }

    async fn pipeline(
        &self,
        io: BoxedIo,
        start: Start,
        expected: Option<PeerId>,
        budget: Budget,
        steps: &StepTracker,
    ) -> Result<Connection, UpgradeError> {
        let (role, security_protocol, io) = match start {
            Start::As(role) => {
                steps.set(UpgradeStep::NegotiateSecurity);
                let (protocol, io) = self.negotiate_security(io, role).await?;
                (role, protocol, io)
            }
            Start::SimultaneousOpen => {
                steps.set(UpgradeStep::SimultaneousOpen);
                self.simultaneous_open(io).await?
            }
            Start::RespondUnlessSilent(silence) => {
                steps.set(UpgradeStep::NegotiateSecurity);
                let (role, io) = crate::io::first_speaker(io, silence)
                    .await
                    .map_err(|e| UpgradeError::NegotiateSecurity(NegotiationError::Io(e)))?;
                tracing::debug!(?role, "the remote spoke first, or was silent");
                let (protocol, io) = self.negotiate_security(io, role).await?;
                (role, protocol, io)
            }
        };
        let security = find(&self.settings.security, &security_protocol, |s| {
            s.protocol_id()
        })
        .ok_or_else(|| UpgradeError::UnknownProtocol {
            step: UpgradeStep::NegotiateSecurity,
            protocol: security_protocol.clone(),
        })?;

        steps.set(UpgradeStep::Handshake);
        let secured = self
            .handshake(security, io, role, expected, budget.clone())
            .await?;
        let SecuredConnection {
            remote_peer,
            remote_public_key,
            io,
            muxer,
        } = secured;

        let (muxer_protocol, muxer_inlined, io) = match muxer {
            Some(protocol) => (protocol, true, io),
            None => {
                steps.set(UpgradeStep::NegotiateMuxer);
                let (protocol, io) = self.negotiate_muxer(io, role).await?;
                (protocol, false, io)
            }
        };
        let muxer =
            find(&self.settings.muxers, &muxer_protocol, |m| m.protocol_id()).ok_or_else(|| {
                UpgradeError::UnknownProtocol {
                    step: if muxer_inlined {
                        UpgradeStep::Handshake
                    } else {
                        UpgradeStep::NegotiateMuxer
                    },
                    protocol: muxer_protocol.clone(),
                }
            })?;

        steps.set(UpgradeStep::Muxer);
        let Muxed { connection, driver } = {
            let _span = tracing::debug_span!("muxer", protocol = %muxer_protocol).entered();
            muxer
                .upgrade_with_budget(io, role, budget)
                .map_err(UpgradeError::Muxer)?
        };
        Ok(Connection {
            remote_peer,
            remote_public_key,
            role,
            security_protocol,
            muxer_protocol,
            muxer_inlined,
            muxed: connection,
            driver,
        })
    }

    /// multistream-select of the security protocol on the raw stream.
    async fn negotiate_security(
        &self,
        io: BoxedIo,
        role: Role,
    ) -> Result<(String, BoxedIo), UpgradeError> {
        let ids = self.security_ids();
        self.select(io, role, ids)
            .instrument(tracing::debug_span!("negotiate_security"))
            .await
            .map_err(UpgradeError::NegotiateSecurity)
    }

    /// multistream-select of the muxer over the secure channel. A lazy proposal is
    /// sent at once (flushed), without waiting for the echo.
    async fn negotiate_muxer(
        &self,
        io: BoxedIo,
        role: Role,
    ) -> Result<(String, BoxedIo), UpgradeError> {
        let ids = self.muxer_ids();
        async {
            let (protocol, mut io) = self.select(io, role, ids).await?;
            // A lazy proposal would otherwise wait for the muxer's first write, and
            // the remote's upgrade with it (a muxer may write nothing until a stream
            // opens). Sending it now costs no round trip: the echo is still only
            // checked on the muxer's first read.
            io.flush().await?;
            Ok((protocol, io))
        }
        .instrument(tracing::debug_span!("negotiate_muxer"))
        .await
        .map_err(UpgradeError::NegotiateMuxer)
    }

    /// One multistream-select negotiation over `ids`, in `role`.
    ///
    /// A dialer with a single id and lazy proposals on returns at once: the
    /// proposal then leaves with the next layer's first bytes.
    async fn select(
        &self,
        io: BoxedIo,
        role: Role,
        ids: Vec<String>,
    ) -> Result<(String, BoxedIo), NegotiationError> {
        let config = &self.settings.mss_config;
        let (protocol, negotiated) = match role {
            Role::Initiator => {
                let version = if self.settings.lazy && ids.len() == 1 {
                    Version::V1Lazy
                } else {
                    Version::V1
                };
                weft_mss::dialer_select_with(io, ids, version, config).await?
            }
            Role::Responder => {
                let matcher: Protocols = ids.into_iter().collect();
                weft_mss::listener_select_with(io, &matcher, config).await?
            }
        };
        tracing::debug!(%protocol, lazy = negotiated.is_pending(), "negotiated");
        Ok((protocol, Box::new(negotiated)))
    }

    /// Simultaneous open: one negotiation that picks the initiator and the security
    /// protocol.
    async fn simultaneous_open(
        &self,
        io: BoxedIo,
    ) -> Result<(Role, String, BoxedIo), UpgradeError> {
        let ids = self.security_ids();
        let matcher: Protocols = ids.iter().cloned().collect();
        let (role, protocol, negotiated) =
            weft_mss::dialer_select_simopen(io, ids, &matcher, &self.settings.mss_config)
                .instrument(tracing::debug_span!("simultaneous_open"))
                .await
                .map_err(UpgradeError::SimultaneousOpen)?;
        let role = match role {
            SimOpenRole::Initiator => Role::Initiator,
            SimOpenRole::Responder => Role::Responder,
        };
        tracing::debug!(?role, %protocol, "simultaneous open settled");
        Ok((role, protocol, Box::new(negotiated)))
    }

    /// The security handshake in `role`, offering our muxers when inlining is on.
    async fn handshake(
        &self,
        security: &Arc<dyn SecurityUpgrade>,
        io: BoxedIo,
        role: Role,
        expected: Option<PeerId>,
        budget: Budget,
    ) -> Result<SecuredConnection, UpgradeError> {
        let protocol = security.protocol_id().to_owned();
        let muxers = if self.settings.inline_muxer_negotiation {
            self.muxer_ids()
        } else {
            Vec::new()
        };
        let span = tracing::debug_span!("handshake", %protocol, ?role);
        let result = async {
            match role {
                Role::Initiator => {
                    security
                        .secure_outbound_with_budget(io, expected, &muxers, budget)
                        .await
                }
                Role::Responder => {
                    let secured = security
                        .secure_inbound_with_budget(io, &muxers, budget)
                        .await?;
                    match expected {
                        Some(expected) if expected != secured.remote_peer => {
                            Err(SecurityError::PeerIdMismatch {
                                expected,
                                actual: secured.remote_peer,
                            })
                        }
                        _ => Ok(secured),
                    }
                }
            }
        }
        .instrument(span)
        .await;
        result.map_err(|error| match refused_lazy_proposal(error) {
            Ok(negotiation) => UpgradeError::NegotiateSecurity(negotiation),
            Err(source) => UpgradeError::Handshake { protocol, source },
        })
    }

    fn security_ids(&self) -> Vec<String> {
        let security = &self.settings.security;
        security
            .iter()
            .map(|s| s.protocol_id().to_owned())
            .collect()
    }

    fn muxer_ids(&self) -> Vec<String> {
        let muxers = &self.settings.muxers;
        muxers.iter().map(|m| m.protocol_id().to_owned()).collect()
    }
}

/// Finds the entry of `list` whose id is `id`.
fn find<'a, T: ?Sized>(
    list: &'a [Arc<T>],
    id: &str,
    id_of: impl Fn(&T) -> &str,
) -> Option<&'a Arc<T>> {
    list.iter().find(|entry| id_of(entry) == id)
}

/// A lazy security proposal is answered while the handshake already runs: when the
/// remote refused it (or broke multistream-select), the handshake sees an I/O error
/// carrying the [`NegotiationError`]. Recover it, so the error names the right step.
// `SecurityError` is the trait's own error type (it carries two `PeerId`s); this
// runs once per failed handshake, so its size does not matter.
#[allow(clippy::result_large_err)]
fn refused_lazy_proposal(error: SecurityError) -> Result<NegotiationError, SecurityError> {
    let SecurityError::Io(io) = error else {
        return Err(error);
    };
    if !io
        .get_ref()
        .is_some_and(|inner| inner.is::<NegotiationError>())
    {
        return Err(SecurityError::Io(io));
    }
    let kind = io.kind();
    match io.into_inner() {
        Some(inner) => inner
            .downcast::<NegotiationError>()
            .map(|negotiation| *negotiation)
            .map_err(|other| SecurityError::Io(std::io::Error::new(kind, other))),
        None => Err(SecurityError::Io(kind.into())),
    }
}

impl std::fmt::Debug for Upgrader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrader")
            .field("security", &self.security_ids())
            .field("muxers", &self.muxer_ids())
            .field("timeout", &self.settings.timeout)
            .field(
                "inline_muxer_negotiation",
                &self.settings.inline_muxer_negotiation,
            )
            .field("lazy", &self.settings.lazy)
            .finish_non_exhaustive()
    }
}
