//! rusqlite errors as [`BackendError`]s, classified for the table on
//! [`BackendErrorKind`]. Messages name the database path (never a URL; SQLite has no
//! password anyway) and carry SQLite's own text.

use std::path::Path;

use rusqlite::ErrorCode;

use crate::error::{BackendError, BackendErrorKind};

/// What was being done when the error happened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Stage {
    /// Opening the database and setting it up (pragmas).
    Connect,
    /// Using an open connection (queries, probe, reset).
    Use,
}

/// A [`BackendError`] for `e`, met on the database at `path` while `what`.
pub(super) fn sqlite_error(
    e: rusqlite::Error,
    stage: Stage,
    path: &Path,
    what: &str,
) -> BackendError {
    let kind = classify(&e, stage);
    BackendError::new(kind, format!("sqlite {}: {what}: {e}", path.display())).with_source(e)
}

/// The kind of `e`:
///
/// - cannot open the file (missing directory, no such file under `mode=rw`, permission),
///   read-only file asked for writing at connect, corrupt file, not a database →
///   `Config`: a wrong path or a bad file is not an outage and connecting again will not
///   fix it, so it is not retried and does not open the breaker;
/// - `SQLITE_BUSY` / `SQLITE_LOCKED` (a lock still held by another connection once
///   `busy_timeout` ran out) and an interrupted statement → `Timeout`;
/// - disk full, out of memory, I/O errors → `Other`: the "server" here is the disk, and a
///   full one is an outage of this database that freeing space ends, so it is retried with
///   backoff and counts against the endpoint (the breaker then fails callers fast).
///   `Capacity` would be wrong: it shrinks the pool to the connections the server accepted,
///   which frees no disk space;
/// - anything else while connecting → `Other`; while in use → `Query` (a statement the
///   database refused: syntax, constraint, type conversion, wrong parameter count…).
pub(super) fn classify(e: &rusqlite::Error, stage: Stage) -> BackendErrorKind {
    use BackendErrorKind as K;
    let Some(code) = e.sqlite_error_code() else {
        return match e {
            rusqlite::Error::InvalidPath(_) | rusqlite::Error::NulError(_) => K::Config,
            _ if stage == Stage::Connect => K::Other,
            _ => K::Query,
        };
    };
    match code {
        ErrorCode::CannotOpen
        | ErrorCode::PermissionDenied
        | ErrorCode::NotADatabase
        | ErrorCode::DatabaseCorrupt
        | ErrorCode::NotFound => K::Config,
        ErrorCode::ReadOnly if stage == Stage::Connect => K::Config,
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::OperationInterrupted => {
            K::Timeout
        }
        ErrorCode::DiskFull | ErrorCode::OutOfMemory | ErrorCode::SystemIoFailure => K::Other,
        _ if stage == Stage::Connect => K::Other,
        _ => K::Query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn errors_are_classified() {
        use rusqlite::ffi;
        use BackendErrorKind as K;
        for (code, connect, used) in [
            (ffi::SQLITE_CANTOPEN, K::Config, K::Config),
            (ffi::SQLITE_PERM, K::Config, K::Config),
            (ffi::SQLITE_NOTADB, K::Config, K::Config),
            (ffi::SQLITE_CORRUPT, K::Config, K::Config),
            (ffi::SQLITE_READONLY, K::Config, K::Query),
            (ffi::SQLITE_BUSY, K::Timeout, K::Timeout),
            (ffi::SQLITE_LOCKED, K::Timeout, K::Timeout),
            (ffi::SQLITE_FULL, K::Other, K::Other),
            (ffi::SQLITE_IOERR, K::Other, K::Other),
            (ffi::SQLITE_CONSTRAINT, K::Other, K::Query),
            (ffi::SQLITE_ERROR, K::Other, K::Query),
        ] {
            assert_eq!(classify(&failure(code), Stage::Connect), connect, "{code}");
            assert_eq!(classify(&failure(code), Stage::Use), used, "{code}");
        }
        assert_eq!(
            classify(&rusqlite::Error::QueryReturnedNoRows, Stage::Use),
            K::Query
        );
        let e = sqlite_error(
            failure(ffi::SQLITE_CANTOPEN),
            Stage::Connect,
            Path::new("/no/such/dir/a.db"),
            "opening",
        );
        assert!(e.to_string().contains("/no/such/dir/a.db"), "{e}");
        assert!(!e.is_retryable());
    }
}
