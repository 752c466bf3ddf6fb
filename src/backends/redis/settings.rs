//! What a connect needs, checked and parsed from a [`ConnectionConfig`].

use std::time::Duration;

use ::redis::RedisConnectionInfo;

use super::errors::config_error;
use crate::connection::{ConnectionConfig, SslMode};
use crate::error::BackendError;

/// What a connect needs, checked and parsed from a [`ConnectionConfig`].
pub(super) struct Settings {
    pub(super) info: RedisConnectionInfo,
    pub(super) db: i64,
    pub(super) name: Option<String>,
    pub(super) response_timeout: Option<Duration>,
    /// TLS (`require` / `verify-full`); `prefer` and `disable` connect in clear text.
    pub(super) tls: bool,
}

impl Settings {
    pub(super) fn from_config(cfg: &ConnectionConfig) -> Result<Self, BackendError> {
        if cfg.backend != "redis" {
            return Err(config_error(
                "connection.backend",
                format!("is `{}`, not `redis`", cfg.backend),
            ));
        }
        let db = match cfg.database.as_deref() {
            None | Some("") => 0,
            Some(d) => d.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                config_error(
                    "connection.database",
                    format!("`{d}` is not a database number"),
                )
            })?,
        };
        let name = match cfg.application_name.as_deref() {
            Some(n) if n.is_empty() || n.chars().any(|c| c.is_whitespace()) => {
                return Err(config_error(
                    "connection.application_name",
                    "must be non-empty and contain no spaces for CLIENT SETNAME",
                ))
            }
            other => other.map(str::to_owned),
        };
        let response_timeout =
            match cfg.options.get("response_timeout") {
                None => None,
                Some(v) => Some(humantime_serde::re::humantime::parse_duration(v).map_err(
                    |e| config_error("connection.options.response_timeout", format!("`{v}`: {e}")),
                )?)
                .filter(|d| !d.is_zero()),
            };
        let mut info = RedisConnectionInfo::default().set_db(db);
        if let Some(user) = &cfg.user {
            info = info.set_username(user);
        }
        if let Some(pw) = &cfg.password {
            info = info.set_password(pw.expose());
        }
        Ok(Self {
            info,
            db,
            name,
            response_timeout,
            tls: matches!(cfg.tls.mode, SslMode::Require | SslMode::VerifyFull),
        })
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
