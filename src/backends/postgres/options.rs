//! The backend's connection options (`connect_timeout`, `statement_timeout`, `options`,
//! `reset`, `target_session_attrs`, `pooler`), parsed from a [`ConnectionConfig`].

use std::time::Duration;

use super::connection::{Pooler, ResetMode};
use crate::connection::ConnectionConfig;
use crate::error::{BackendError, BackendErrorKind};

#[derive(Debug, Default)]
pub(super) struct Options {
    pub(super) connect_timeout: Option<Duration>,
    pub(super) server_options: Option<String>,
    pub(super) reset: ResetMode,
    pub(super) read_write: bool,
    pub(super) pooler: Pooler,
    /// `statement_timeout` as written (validated: digits and a PostgreSQL time unit), for
    /// the poolers, which get it by `SET` instead of the startup packet.
    pub(super) statement_timeout: Option<String>,
}

impl Options {
    pub(super) fn parse(config: &ConnectionConfig) -> Result<Options, BackendError> {
        let bad = |key: &str, why: String| {
            BackendError::new(BackendErrorKind::Config, format!("option `{key}` {why}"))
        };
        let mut o = Options::default();
        let mut server: Vec<String> = Vec::new();
        let mut raw_options = false;
        for (key, value) in &config.options {
            let value = value.trim();
            match key.as_str() {
                "connect_timeout" => {
                    let d = parse_duration(value, Duration::from_secs(1)).ok_or_else(|| {
                        bad(
                            key,
                            format!("`{value}` is not a duration (e.g. `5`, `500ms`, `2s`)"),
                        )
                    })?;
                    o.connect_timeout = (!d.is_zero()).then_some(d);
                }
                "statement_timeout" => {
                    if parse_duration(value, Duration::from_millis(1)).is_none() {
                        return Err(bad(
                            key,
                            format!("`{value}` is not a duration (e.g. `5000`, `5s`, `1min`)"),
                        ));
                    }
                    o.statement_timeout = Some(value.to_string());
                }
                "options" => {
                    raw_options = true;
                    server.push(value.to_string());
                }
                "pooler" => {
                    o.pooler = match value {
                        "none" => Pooler::None,
                        "transaction" => Pooler::Transaction,
                        "session" => Pooler::Session,
                        _ => {
                            return Err(bad(
                                key,
                                format!("`{value}` is not one of none, transaction, session"),
                            ))
                        }
                    }
                }
                "reset" => {
                    o.reset = match value {
                        "rollback" => ResetMode::Rollback,
                        "discard_all" | "discard-all" => ResetMode::DiscardAll,
                        _ => {
                            return Err(bad(
                                key,
                                format!("`{value}` is not one of rollback, discard_all"),
                            ))
                        }
                    }
                }
                "target_session_attrs" => {
                    o.read_write = match value {
                        "any" => false,
                        "read-write" => true,
                        _ => {
                            return Err(bad(
                                key,
                                format!("`{value}` is not one of any, read-write"),
                            ))
                        }
                    }
                }
                _ => {
                    return Err(bad(
                        key,
                        format!(
                            "is not known to the postgres backend (known: {})",
                            crate::connection::POSTGRES_OPTIONS.join(", ")
                        ),
                    ))
                }
            }
        }
        if o.pooler != Pooler::None && raw_options {
            // PgBouncer (before 1.20's track_extra_parameters, and for most settings
            // after) refuses a startup packet carrying `options`.
            return Err(bad(
                "options",
                format!(
                    "cannot be sent through a connection pooler (pooler={}): PgBouncer refuses \
                     the `options` startup parameter; set these on the role or database \
                     (`ALTER ROLE … SET …`) instead",
                    o.pooler
                ),
            ));
        }
        if o.pooler == Pooler::None {
            if let Some(t) = &o.statement_timeout {
                server.push(format!("-c statement_timeout={t}"));
            }
        }
        if !server.is_empty() {
            o.server_options = Some(server.join(" "));
        }
        Ok(o)
    }
}

/// `"5"` (in `unit`s), `"500ms"`, `"2s"`, `"1min"`, `"1h"`, `"1d"`, `"100us"`.
fn parse_duration(s: &str, unit: Duration) -> Option<Duration> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let per = match &s[digits..] {
        "" => unit,
        "us" => Duration::from_micros(1),
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86400),
        _ => return None,
    };
    per.checked_mul(u32::try_from(n).ok()?)
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
