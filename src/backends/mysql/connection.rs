//! [`MysqlConnection`]: the pooled connection, what it records about its use, and its
//! `Debug` that never shows the password.

use std::fmt;
use std::ops::{Deref, DerefMut};

use ::mysql_async::consts::StatusFlags;
use ::mysql_async::{Conn, Error as MyError};

use super::options::ResetMode;
use crate::backends::support::redact;
use crate::error::{BackendError, BackendErrorKind};

/// A pooled MySQL / MariaDB connection: dereferences to a mysql_async [`Conn`].
///
/// Its `Debug` shows the connection id only (the `Conn`'s would show the password).
pub struct MysqlConnection {
    pub(super) conn: Conn,
    pub(super) reset: ResetMode,
    /// Dereferenced mutably since the last reset: statements may have run. (mysql_async's
    /// statement API is `&mut Conn`, and its `Queryable` trait cannot be implemented
    /// outside mysql_async, so this is the finest hook there is.)
    pub(super) touched: bool,
    /// A ping, rollback or reset failed fatally.
    pub(super) broken: bool,
}

impl MysqlConnection {
    /// The server's connection id (`CONNECTION_ID()`, the id `KILL` takes).
    pub fn id(&self) -> u32 {
        self.conn.id()
    }

    /// Whether the server said a transaction is open after the last successful statement:
    /// `None` after a statement failed with a server error. Informational only: a statement
    /// that failed because the connection died leaves the previous answer in place.
    pub fn in_transaction(&self) -> Option<bool> {
        self.conn.last_ok_packet().map(|ok| {
            ok.status_flags()
                .contains(StatusFlags::SERVER_STATUS_IN_TRANS)
        })
    }

    /// The mysql_async connection, taken out of the pool's wrapper.
    pub fn into_inner(self) -> Conn {
        self.conn
    }

    /// Whether this checkout used the connection mutably (a statement may have run) and
    /// it was not reset since.
    pub fn was_used(&self) -> bool {
        self.touched
    }

    /// Whether one of the backend's own operations (ping, rollback, reset) failed fatally.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    pub(super) fn needs_reset(&self) -> bool {
        // Both modes reset after use only: see the module documentation.
        self.touched
    }

    /// Record a fatal failure of one of the backend's own operations.
    pub(super) fn check<T>(
        &mut self,
        what: &str,
        result: Result<T, MyError>,
    ) -> Result<T, BackendError> {
        result.map_err(|e| {
            let kind = if e.is_fatal() {
                self.broken = true;
                BackendErrorKind::Closed
            } else {
                BackendErrorKind::Query
            };
            BackendError::new(
                kind,
                format!("{what} failed: {}", redact(&e.to_string(), None)),
            )
            .with_source(e)
        })
    }
}

impl Deref for MysqlConnection {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for MysqlConnection {
    fn deref_mut(&mut self) -> &mut Conn {
        self.touched = true;
        &mut self.conn
    }
}

impl fmt::Debug for MysqlConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConnection")
            .field("id", &self.conn.id())
            .field("in_transaction", &self.in_transaction())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}
