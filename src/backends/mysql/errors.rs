//! Configuration errors, and how a mysql_async error met while connecting is classified.

use std::fmt;

use ::mysql_async::{DriverError, Error as MyError, IoError, TlsError};

use crate::backends::support::redact;
use crate::backends::tls;
use crate::connection::Host;
use crate::error::{BackendError, BackendErrorKind};
use crate::secret::Secret;

pub(super) fn config_error(field: &str, reason: impl fmt::Display) -> BackendError {
    BackendError::new(BackendErrorKind::Config, format!("`{field}` {reason}"))
}

/// A failed connect to `host` as a [`BackendError`]: classified, described in a few words
/// for TLS failures, scrubbed of the password.
pub(super) fn connect_error(e: MyError, host: &Host, password: Option<&Secret>) -> BackendError {
    let (kind, text) = match tls::find_rustls_error(&e) {
        Some(t) => (tls::error_kind(t), tls::describe(t, &host.host)),
        None => (classify(&e), e.to_string()),
    };
    let text = redact(&text, password);
    BackendError::new(kind, format!("mysql at {host}: {text}")).with_source(e)
}

/// Server error codes that retrying cannot fix.
pub(super) fn classify(e: &MyError) -> BackendErrorKind {
    match e {
        MyError::Server(s) => match s.code {
            // access denied (user, database, no password), plugin not supported, password
            // expired, host not allowed
            1044 | 1045 | 1698 | 1251 | 1820 | 1862 | 1130 => BackendErrorKind::Auth,
            // unknown database; clear text refused by a MySQL server with
            // require_secure_transport (MariaDB says 1045, access denied, instead)
            1049 | 3159 => BackendErrorKind::Config,
            // too many connections (server, user, user limit): capacity, not an outage
            1040 | 1203 | 1226 => BackendErrorKind::Capacity,
            _ => BackendErrorKind::Connect,
        },
        // TLS asked for but the server offers none; a host that cannot be a TLS server name
        MyError::Driver(
            DriverError::UnknownAuthPlugin { .. } | DriverError::NoClientSslFlagFromServer,
        )
        | MyError::Io(IoError::Tls(TlsError::InvalidDnsName(_)))
        | MyError::Url(_) => BackendErrorKind::Config,
        MyError::Driver(_) | MyError::Io(_) | MyError::Other(_) => BackendErrorKind::Connect,
    }
}

#[cfg(test)]
#[path = "errors_tests.rs"]
mod tests;
