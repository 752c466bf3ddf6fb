//! Configuration errors, and how a redis-rs error met while connecting is classified.

use std::fmt;

use ::redis::{ErrorKind, RedisError};

use crate::error::{BackendError, BackendErrorKind};

pub(super) fn config_error(field: &str, reason: impl fmt::Display) -> BackendError {
    BackendError::new(BackendErrorKind::Config, format!("`{field}` {reason}"))
}

pub(super) fn classify(e: &RedisError) -> BackendErrorKind {
    let text = e.to_string();
    if e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
        || text.contains("NOAUTH")
        || text.contains("WRONGPASS")
        || text.contains("Authentication required")
    {
        BackendErrorKind::Auth
    } else if e.kind() == ErrorKind::InvalidClientConfig
        || text.contains("refused to switch database")
    {
        BackendErrorKind::Config
    } else if text.contains("max number of clients reached") {
        BackendErrorKind::Capacity
    } else if e.is_timeout() {
        BackendErrorKind::Timeout
    } else {
        BackendErrorKind::Connect
    }
}

#[cfg(test)]
#[path = "errors_tests.rs"]
mod tests;
