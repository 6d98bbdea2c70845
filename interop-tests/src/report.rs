//! The JSON line a dialer prints (`PEER dial ...`), shared by every participant.
//!
//! Success: `{"ok":true,"remote_peer":"12D3KooW...","agent_version":"...",
//! "protocols":["..."],"security":"/noise","muxer":"/yamux/1.0.0","rtt_ms":0.42,
//! "echo_bytes":1048576}`; failure: `{"ok":false,"error":"..."}`.

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

/// What a successful dial observed.
#[derive(Debug, Clone, PartialEq)]
pub struct DialReport {
    /// The remote's peer id, as proven by the security handshake.
    pub remote_peer: PeerId,
    /// The remote's identify `agentVersion`.
    pub agent_version: String,
    /// The protocols the remote announced through identify.
    pub protocols: Vec<String>,
    /// The negotiated security protocol id (as configured when the library hides it).
    pub security: String,
    /// The negotiated muxer protocol id (as configured when the library hides it).
    pub muxer: String,
    /// Round-trip time of one ping, in milliseconds.
    pub rtt_ms: f64,
    /// Bytes sent through `/echo/1.0.0` and verified on return.
    pub echo_bytes: u64,
}

/// The outcome a dialer prints: a report or an error message.
#[derive(Debug, Clone, PartialEq)]
pub enum DialResult {
    /// `{"ok":true,...}`.
    Ok(DialReport),
    /// `{"ok":false,"error":"..."}`.
    Failed(String),
}

/// A dialer's output line that is not a valid report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not JSON of the expected shape.
    #[error("not a dial report: {0}")]
    Json(#[from] serde_json::Error),
    /// `"ok":true` but a field is missing.
    #[error("dial report lacks the field `{0}`")]
    MissingField(&'static str),
    /// `remote_peer` is not a peer id.
    #[error("bad remote_peer {0:?}")]
    BadPeerId(String),
}

/// The line as it travels: every field optional, checked on conversion.
#[derive(Debug, Default, Serialize, Deserialize)]
struct WireReport {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote_peer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocols: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    muxer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rtt_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    echo_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl DialResult {
    /// Whether this is a success.
    pub fn is_ok(&self) -> bool {
        matches!(self, DialResult::Ok(_))
    }

    /// The single JSON line (without newline) the contract prints.
    pub fn to_json_line(&self) -> String {
        let wire = match self {
            DialResult::Ok(r) => WireReport {
                ok: true,
                remote_peer: Some(r.remote_peer.to_base58()),
                agent_version: Some(r.agent_version.clone()),
                protocols: Some(r.protocols.clone()),
                security: Some(r.security.clone()),
                muxer: Some(r.muxer.clone()),
                rtt_ms: Some(r.rtt_ms),
                echo_bytes: Some(r.echo_bytes),
                error: None,
            },
            DialResult::Failed(e) => WireReport {
                ok: false,
                error: Some(e.clone()),
                ..WireReport::default()
            },
        };
        // Serialising plain strings and numbers cannot fail; NaN/inf become `null`.
        serde_json::to_string(&wire)
            .unwrap_or_else(|e| format!(r#"{{"ok":false,"error":"cannot encode report: {e}"}}"#))
    }

    /// Parses one JSON line printed by a dialer.
    pub fn parse_line(line: &str) -> Result<Self, ReportError> {
        let wire: WireReport = serde_json::from_str(line.trim())?;
        if !wire.ok {
            return Ok(DialResult::Failed(
                wire.error.unwrap_or_else(|| "no error message".into()),
            ));
        }
        let remote = wire
            .remote_peer
            .ok_or(ReportError::MissingField("remote_peer"))?;
        let remote_peer = remote
            .parse::<PeerId>()
            .map_err(|_| ReportError::BadPeerId(remote.clone()))?;
        Ok(DialResult::Ok(DialReport {
            remote_peer,
            agent_version: wire
                .agent_version
                .ok_or(ReportError::MissingField("agent_version"))?,
            protocols: wire
                .protocols
                .ok_or(ReportError::MissingField("protocols"))?,
            security: wire.security.ok_or(ReportError::MissingField("security"))?,
            muxer: wire.muxer.ok_or(ReportError::MissingField("muxer"))?,
            rtt_ms: wire.rtt_ms.ok_or(ReportError::MissingField("rtt_ms"))?,
            echo_bytes: wire
                .echo_bytes
                .ok_or(ReportError::MissingField("echo_bytes"))?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_go_style_line_parses() {
        let line = r#"{"ok":true,"remote_peer":"12D3KooWBo9ZeBdTrRNNtgudo8JtBdFscGaWKLe3KEvGXhFaXxTR","agent_version":"go-libp2p-interop-peer","protocols":["/echo/1.0.0","/ipfs/id/1.0.0"],"security":"/noise","muxer":"/yamux/1.0.0","rtt_ms":0.230756,"echo_bytes":1048576}"#;
        let DialResult::Ok(report) = DialResult::parse_line(line).unwrap() else {
            panic!("expected a success");
        };
        assert_eq!(
            report.remote_peer.to_base58(),
            "12D3KooWBo9ZeBdTrRNNtgudo8JtBdFscGaWKLe3KEvGXhFaXxTR"
        );
        assert_eq!(report.echo_bytes, 1_048_576);
        assert_eq!(report.security, "/noise");
        // And it survives a round trip through our own encoder.
        let again = DialResult::Ok(report.clone()).to_json_line();
        assert_eq!(
            DialResult::parse_line(&again).unwrap(),
            DialResult::Ok(report)
        );
    }

    #[test]
    fn failures_and_malformed_lines_are_told_apart() {
        assert_eq!(
            DialResult::parse_line(r#"{"ok":false,"error":"boom"}"#).unwrap(),
            DialResult::Failed("boom".into())
        );
        assert!(matches!(
            DialResult::parse_line(r#"{"ok":true,"agent_version":"x"}"#),
            Err(ReportError::MissingField("remote_peer"))
        ));
        assert!(matches!(
            DialResult::parse_line("listening on 1.2.3.4"),
            Err(ReportError::Json(_))
        ));
        assert_eq!(
            DialResult::Failed("a \"quoted\" error".into()).to_json_line(),
            r#"{"ok":false,"error":"a \"quoted\" error"}"#
        );
    }
}
