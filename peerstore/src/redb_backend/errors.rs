//! Mapping `redb` errors to [`PeerStoreError`].

use crate::error::PeerStoreError;

/// Converts any `redb` error: damage becomes [`PeerStoreError::Corrupt`], a held lock
/// [`PeerStoreError::AlreadyOpen`], file errors [`PeerStoreError::Io`].
pub(crate) fn storage(error: impl Into<redb::Error>) -> PeerStoreError {
    match error.into() {
        redb::Error::Corrupted(message) => PeerStoreError::Corrupt(message),
        redb::Error::UpgradeRequired(version) => PeerStoreError::Corrupt(format!(
            "redb file format {version} needs an upgrade this build does not do"
        )),
        redb::Error::DatabaseAlreadyOpen => PeerStoreError::AlreadyOpen,
        redb::Error::Io(io) => PeerStoreError::Io(io),
        other => PeerStoreError::Storage(Box::new(other)),
    }
}
