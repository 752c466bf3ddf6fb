//! `impl Backend for SqliteBackend`: opening a database (flags, the in-memory database's
//! name, pragmas), the probe and the reset.

use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;

use super::connection::SqliteConnection;
use super::errors::{sqlite_error, Stage};
use super::SqliteBackend;
use crate::backends::Backend;
use crate::connection::{canonical_path, ConnectionConfig, OpenMode, SqliteOptions};
use crate::error::{BackendError, BackendErrorKind, ConfigError};
use crate::key::PoolKey;

/// A configuration error as a backend error (the supervisor validates configs first, so
/// this is for configs handed to the backend directly).
fn config_error(e: ConfigError) -> BackendError {
    BackendError::new(BackendErrorKind::Config, e.to_string()).with_source(e)
}

impl Backend for SqliteBackend {
    type Connection = SqliteConnection;

    async fn connect(&self, cfg: &ConnectionConfig) -> Result<SqliteConnection, BackendError> {
        if cfg.backend != "sqlite" {
            return Err(config_error(ConfigError::new(
                "connection.backend",
                "is not `sqlite`: the sqlite backend opens SQLite configs only",
            )));
        }
        cfg.validate().map_err(config_error)?;
        let options = SqliteOptions::from_config(cfg).map_err(config_error)?;
        let path = cfg.path.as_deref().unwrap_or(Path::new(""));
        let (target, flags) = if cfg.is_sqlite_memory() {
            (self.memory_name(&PoolKey::of(cfg)), memory_flags())
        } else {
            (canonical_path(path), file_flags(options.mode))
        };
        let gate = self.gate(&target);
        let opened = {
            let target = target.clone();
            tokio::task::spawn_blocking(move || open(&target, flags, &options)).await
        };
        match opened {
            Ok(Ok(conn)) => Ok(SqliteConnection::new(conn, gate, target)),
            Ok(Err((e, what))) => Err(sqlite_error(e, Stage::Connect, &target, what)),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(BackendError::new(
                BackendErrorKind::Other,
                "sqlite: the runtime is shutting down",
            )),
        }
    }

    /// `SELECT 1`.
    async fn probe(&self, conn: &mut SqliteConnection) -> Result<(), BackendError> {
        let one: i64 = conn
            .with(|c| c.query_row("SELECT 1", [], |r| r.get(0)))
            .await?;
        if one != 1 {
            return Err(BackendError::new(
                BackendErrorKind::Query,
                format!("sqlite {}: SELECT 1 answered {one}", conn.path().display()),
            ));
        }
        Ok(())
    }

    /// Only when a transaction may be open (SQLite is not in autocommit mode).
    fn needs_reset(&self, conn: &SqliteConnection) -> bool {
        conn.in_transaction()
    }

    /// `ROLLBACK`.
    async fn reset(&self, conn: &mut SqliteConnection) -> Result<(), BackendError> {
        conn.rollback().await
    }

    fn is_broken(&self, conn: &mut SqliteConnection) -> bool {
        conn.is_broken()
    }
}

fn file_flags(mode: OpenMode) -> OpenFlags {
    // No SQLITE_OPEN_URI: the canonical path is a file name, never read as a URI.
    let access = match mode {
        OpenMode::Ro => OpenFlags::SQLITE_OPEN_READ_ONLY,
        OpenMode::Rw => OpenFlags::SQLITE_OPEN_READ_WRITE,
        OpenMode::Rwc => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    };
    access | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

fn memory_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// Open `target` and set the connection up. The error says which step failed.
fn open(
    target: &Path,
    flags: OpenFlags,
    options: &SqliteOptions,
) -> Result<rusqlite::Connection, (rusqlite::Error, &'static str)> {
    let conn = rusqlite::Connection::open_with_flags(target, flags).map_err(|e| (e, "opening"))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| (e, "setting busy_timeout"))?;
    // SQLite opens lazily: reading the header now finds a file that is not a database.
    conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0))
        .map_err(|e| (e, "reading the database header"))?;
    if let Some(mode) = options.journal_mode {
        let set: String = conn
            .query_row(
                &format!("PRAGMA journal_mode = {}", mode.as_sql()),
                [],
                |r| r.get(0),
            )
            .map_err(|e| (e, "setting journal_mode"))?;
        if !set.eq_ignore_ascii_case(mode.as_sql()) {
            // SQLite answers with the mode it kept when it cannot switch (WAL needs shared
            // memory, which some file systems lack).
            return Err((
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("journal_mode stayed {set}")),
                ),
                "setting journal_mode",
            ));
        }
    }
    let fk = if options.foreign_keys { "ON" } else { "OFF" };
    conn.execute_batch(&format!("PRAGMA foreign_keys = {fk}"))
        .map_err(|e| (e, "setting foreign_keys"))?;
    Ok(conn)
}

impl SqliteBackend {
    /// The name of the in-memory database of the pool with `key`: a `memdb` file, shared by
    /// every connection of this process that opens the same name.
    fn memory_name(&self, key: &PoolKey) -> PathBuf {
        format!("file:/poolwarden-{}-{}?vfs=memdb", self.id, key.to_hex()).into()
    }
}
