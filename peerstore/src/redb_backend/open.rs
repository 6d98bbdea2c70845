//! Opening a store file without ever overwriting one we do not understand.
//!
//! An existing file is first opened read-only to check that it is a sound redb file and
//! a weft peer store of a known format version; only then is it opened for writing. A
//! file that needs crash recovery cannot be opened read-only: it is recovered by the
//! read-write open (redb's own repair) and then checked the same way before any write.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use redb::{Builder, Database, DatabaseError, ReadableDatabase, ReadableTable};

use super::errors::storage;
use super::{RedbOptions, FORMAT_KEY, FORMAT_VERSION, META, PEERS};
use crate::error::{PeerStoreError, Result};

/// Opens or creates the database at `path` and checks or writes its format version.
pub(crate) fn open_database(path: &Path, options: &RedbOptions) -> Result<Database> {
    let existing = std::fs::metadata(path)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if existing {
        preflight(path, options)?;
    }
    let mut builder = Builder::new();
    builder
        .set_cache_size(options.cache_size)
        .set_check_integrity_on_open(options.verify_on_open);
    let db = guard_panic(|| builder.create(path))?.map_err(open_error)?;
    init_or_check_format(&db)?;
    Ok(db)
}

/// Read-only check of an existing file; `Ok` also when it only needs crash recovery.
fn preflight(path: &Path, options: &RedbOptions) -> Result<()> {
    let mut builder = Builder::new();
    builder.set_cache_size(options.cache_size.min(4 * 1024 * 1024));
    match guard_panic(|| builder.open_read_only(path))? {
        Ok(db) => {
            let txn = db.begin_read().map_err(storage)?;
            let version = match txn.open_table(META) {
                Ok(meta) => meta.get(FORMAT_KEY).map_err(storage)?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(other) => return Err(storage(other)),
            };
            match version {
                Some(found) => check_version(found),
                None if txn.list_tables().map_err(storage)?.next().is_none() => Ok(()),
                None => Err(not_a_peer_store()),
            }
        }
        Err(DatabaseError::RepairAborted) => {
            tracing::info!("peer store file needs crash recovery");
            Ok(())
        }
        Err(other) => Err(open_error(other)),
    }
}

/// Writes the format version into a new store, or checks the stored one.
fn init_or_check_format(db: &Database) -> Result<()> {
    let txn = db.begin_write().map_err(storage)?;
    let has_tables = txn.list_tables().map_err(storage)?.next().is_some();
    let found = {
        let mut meta = txn.open_table(META).map_err(storage)?;
        let found = meta.get(FORMAT_KEY).map_err(storage)?.map(|v| v.value());
        match found {
            Some(found) => Some(found),
            None if has_tables => None,
            None => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION).map_err(storage)?;
                Some(FORMAT_VERSION)
            }
        }
    };
    match found {
        None => {
            txn.abort().map_err(storage)?;
            Err(not_a_peer_store())
        }
        Some(found) => {
            if let Err(e) = check_version(found) {
                txn.abort().map_err(storage)?;
                return Err(e);
            }
            txn.open_table(PEERS).map_err(storage)?;
            txn.commit().map_err(storage)
        }
    }
}

fn check_version(found: u64) -> Result<()> {
    if found == FORMAT_VERSION {
        Ok(())
    } else {
        Err(PeerStoreError::UnsupportedFormat {
            found,
            supported: FORMAT_VERSION,
        })
    }
}

fn not_a_peer_store() -> PeerStoreError {
    PeerStoreError::Corrupt("a redb file, but not a weft peer store".into())
}

fn open_error(error: DatabaseError) -> PeerStoreError {
    match error {
        DatabaseError::DatabaseAlreadyOpen => PeerStoreError::AlreadyOpen,
        DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() != std::io::ErrorKind::UnexpectedEof
                && io.kind() != std::io::ErrorKind::InvalidData =>
        {
            PeerStoreError::Io(io)
        }
        other => PeerStoreError::Corrupt(format!("cannot open as a redb file: {other}")),
    }
}

/// Runs `f`, turning a panic of the storage engine on a damaged file into an error.
fn guard_panic<T>(f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| PeerStoreError::Corrupt("the storage engine could not read the file".into()))
}
