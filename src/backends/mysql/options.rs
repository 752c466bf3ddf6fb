//! The backend's options, checked and parsed from a [`ConnectionConfig`], and the
//! mysql_async options of one connect.

use ::mysql_async::{OptsBuilder, SslOpts};

use super::errors::config_error;
use super::tls::ssl_opts;
use crate::connection::{ConnectionConfig, Host};
use crate::error::BackendError;

/// How a returned connection is cleaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResetMode {
    /// `ROLLBACK` after use.
    Rollback,
    /// `COM_RESET_CONNECTION` after use.
    Connection,
}

/// What a connect needs, checked and parsed from a [`ConnectionConfig`].
pub(super) struct Settings {
    pub(super) reset: ResetMode,
    pub(super) wait_timeout: Option<usize>,
    pub(super) prefer_socket: bool,
    /// TLS (`require` / `verify-full`), or none.
    pub(super) ssl: Option<SslOpts>,
}

impl Settings {
    pub(super) fn from_config(cfg: &ConnectionConfig) -> Result<Self, BackendError> {
        if cfg.backend != "mysql" {
            return Err(config_error(
                "connection.backend",
                format!("is `{}`, not `mysql`", cfg.backend),
            ));
        }
        let reset = match cfg.options.get("reset").map(String::as_str) {
            None | Some("rollback") => ResetMode::Rollback,
            Some("connection") => ResetMode::Connection,
            Some(other) => {
                return Err(config_error(
                    "connection.options.reset",
                    format!("`{other}` is not one of rollback, connection"),
                ))
            }
        };
        let wait_timeout = match cfg.options.get("wait_timeout") {
            None => None,
            Some(v) => Some(v.parse::<usize>().map_err(|_| {
                config_error(
                    "connection.options.wait_timeout",
                    format!("`{v}` is not a number of seconds"),
                )
            })?),
        };
        let prefer_socket = match cfg.options.get("prefer_socket").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(config_error(
                    "connection.options.prefer_socket",
                    format!("`{other}` is not true or false"),
                ))
            }
        };
        Ok(Self {
            reset,
            wait_timeout,
            prefer_socket,
            ssl: ssl_opts(&cfg.tls)?,
        })
    }

    pub(super) fn opts(&self, cfg: &ConnectionConfig, host: &Host) -> OptsBuilder {
        let mut opts = OptsBuilder::default()
            .user(cfg.user.clone())
            .pass(cfg.password.as_ref().map(|p| p.expose().to_owned()))
            .db_name(cfg.database.clone())
            .prefer_socket(self.prefer_socket)
            .wait_timeout(self.wait_timeout)
            .ssl_opts(self.ssl.clone());
        if host.is_unix_socket() {
            opts = opts.socket(Some(host.host.clone()));
        } else {
            opts = opts.ip_or_hostname(host.host.clone()).tcp_port(host.port);
        }
        opts
    }
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
