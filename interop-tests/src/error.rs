//! The harness's error type.

use std::io;
use std::time::Duration;

/// Everything that can go wrong while preparing, running or talking to a peer program.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Building or installing a peer program failed.
    #[error("preparing the {participant} peer failed: {message}")]
    Prepare {
        /// Which peer program.
        participant: String,
        /// What failed, with the tool's output.
        message: String,
    },
    /// A peer program could not be started.
    #[error("starting `{program}` failed: {source}")]
    Spawn {
        /// The program that was run.
        program: String,
        /// The OS error.
        source: io::Error,
    },
    /// A listening peer did not print its address line in time.
    #[error("{participant} listener printed no address within {timeout:?}; stderr:\n{stderr}")]
    ListenTimeout {
        /// Which peer program.
        participant: String,
        /// How long we waited.
        timeout: Duration,
        /// What the peer wrote on stderr.
        stderr: String,
    },
    /// A listening peer printed something that is not `<multiaddr>/p2p/<peer id>`.
    #[error(
        "{participant} listener printed a bad address line {line:?}: {reason}; stderr:\n{stderr}"
    )]
    BadListenLine {
        /// Which peer program.
        participant: String,
        /// The line it printed (empty when it exited first).
        line: String,
        /// Why the line was rejected.
        reason: String,
        /// What the peer wrote on stderr.
        stderr: String,
    },
    /// A dialer reported a failure, exited non-zero, printed no valid report or timed out.
    #[error("{participant} dialer failed: {message}; stderr:\n{stderr}")]
    Dial {
        /// Which peer program.
        participant: String,
        /// The dialer's own error, or what the harness saw.
        message: String,
        /// What the dialer wrote on stderr.
        stderr: String,
    },
    /// Local I/O (files, sockets, pipes) failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Result alias for the harness.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
