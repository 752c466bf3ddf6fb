//! tokio-postgres errors as [`BackendError`]s: classified by the stage they happened in,
//! described with their whole source chain, scrubbed of the password.

use std::error::Error as StdError;
use std::io;

use tokio_postgres::error::SqlState;

use crate::backends::support::{chain, redact};
use crate::backends::tls::{self, find_rustls_error};
use crate::error::{BackendError, BackendErrorKind};
use crate::secret::Secret;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Opening the connection.
    Connect,
    /// Using an open connection (probe, reset).
    Use,
}

/// A [`BackendError`] for a tokio-postgres error: classified, described with its whole
/// source chain, scrubbed of the password.
pub(super) fn pg_error(
    e: tokio_postgres::Error,
    stage: Stage,
    what: &str,
    password: Option<&Secret>,
) -> BackendError {
    let kind = classify(&e, stage);
    let message = redact(&format!("{what}: {}", describe(&e)), password);
    BackendError::new(kind, message).with_source(e)
}

/// [`pg_error`] for a failed connect to `host`: a TLS failure is described in a few words
/// (`TLS: certificate not valid for host db1`).
pub(super) fn pg_connect_error(
    e: tokio_postgres::Error,
    what: &str,
    host: &str,
    password: Option<&Secret>,
) -> BackendError {
    let Some(short) = find_rustls_error(&e).map(|t| tls::describe(t, host)) else {
        return pg_error(e, Stage::Connect, what, password);
    };
    let kind = classify(&e, Stage::Connect);
    BackendError::new(kind, redact(&format!("{what}: {short}"), password)).with_source(e)
}

fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

fn classify(e: &tokio_postgres::Error, stage: Stage) -> BackendErrorKind {
    use BackendErrorKind as K;
    let lost = if stage == Stage::Connect {
        K::Connect
    } else {
        K::Closed
    };
    if let Some(code) = e.code() {
        return match code {
            // 28P01 wrong password; 42501 no CONNECT privilege on the database.
            c if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INSUFFICIENT_PRIVILEGE && stage == Stage::Connect =>
            {
                K::Auth
            }
            // 28000 is both "role does not exist" (what was asked cannot work: a
            // configuration error) and pg_hba.conf refusing this client (no entry, no valid
            // client certificate: an authentication error). Neither is retried or counted
            // against the endpoint.
            c if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION && stage == Stage::Connect => {
                if e.as_db_error()
                    .is_some_and(|d| d.message().contains("does not exist"))
                {
                    K::Config
                } else {
                    K::Auth
                }
            }
            // 3D000: the database does not exist.
            c if *c == SqlState::INVALID_CATALOG_NAME && stage == Stage::Connect => K::Config,
            // Of class 53 only 53300 is capacity (53100 disk full and 53200 out of memory
            // are the server in trouble: the default below counts them against it).
            c if *c == SqlState::TOO_MANY_CONNECTIONS && stage == Stage::Connect => K::Capacity,
            // 57P03: starting up or shutting down, a transient outage.
            c if *c == SqlState::CANNOT_CONNECT_NOW => K::Connect,
            c if *c == SqlState::QUERY_CANCELED => K::Timeout,
            c if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || c.code().starts_with("08") =>
            {
                lost
            }
            _ if stage == Stage::Connect => K::Connect,
            _ => K::Query,
        };
    }
    if e.is_closed() {
        return lost;
    }
    if let Some(tls) = find_rustls_error(e) {
        return tls::error_kind(tls);
    }
    let text = describe(e);
    if text.contains("server does not support TLS") || text.starts_with("invalid configuration") {
        K::Config
    } else if text.starts_with("authentication error") {
        K::Auth
    } else if text.starts_with("timeout waiting for server") {
        K::Timeout
    } else if chain(e).iter().any(|c| c.is::<io::Error>()) {
        lost
    } else if stage == Stage::Connect {
        K::Connect
    } else {
        K::Other
    }
}

/// A query error from [`PgConnection`](super::PgConnection)'s or
/// [`PgTransaction`](super::PgTransaction)'s methods (or the client's), classified as the
/// pool classifies errors of an open connection: `Query` for SQL errors (division by zero,
/// a constraint), `Timeout` for `57014` (statement timeout, cancelled), `Closed` for a lost
/// connection, with the tokio-postgres error as its source.
impl From<tokio_postgres::Error> for BackendError {
    fn from(e: tokio_postgres::Error) -> BackendError {
        pg_error(e, Stage::Use, "query", None)
    }
}
