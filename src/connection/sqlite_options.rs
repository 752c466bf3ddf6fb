//! A SQLite config's options (`mode`, `busy_timeout`, `journal_mode`, `foreign_keys`),
//! read from [`ConnectionConfig::options`] and checked; documented on
//! [`ConnectionConfig::path`].

use std::path::Path;
use std::time::Duration;

use super::ConnectionConfig;
use crate::error::ConfigError;

/// The path of an in-memory database.
pub(crate) const MEMORY: &str = ":memory:";

/// The default `busy_timeout`.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite counts the busy timeout in milliseconds, in a C `int`.
const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

const KNOWN_OPTIONS: &str = "mode, busy_timeout, journal_mode, foreign_keys";

/// How a database file is opened (the `mode` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// `ro`: read only.
    Ro,
    /// `rw`: read-write, the file must exist.
    Rw,
    /// `rwc` (the default): read-write, created if missing.
    Rwc,
}

/// The `journal_mode` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JournalMode {
    Wal,
    Delete,
    Truncate,
    Persist,
    Memory,
    Off,
}

#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
impl JournalMode {
    /// The value of `PRAGMA journal_mode = …`.
    pub(crate) fn as_sql(self) -> &'static str {
        match self {
            JournalMode::Wal => "WAL",
            JournalMode::Delete => "DELETE",
            JournalMode::Truncate => "TRUNCATE",
            JournalMode::Persist => "PERSIST",
            JournalMode::Memory => "MEMORY",
            JournalMode::Off => "OFF",
        }
    }
}

/// A SQLite config's options, read from [`ConnectionConfig::options`] (documented on
/// [`ConnectionConfig::path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SqliteOptions {
    pub(crate) mode: OpenMode,
    pub(crate) busy_timeout: Duration,
    /// The journal mode to set on connect; `None`: leave the database's own (read-only
    /// connections and in-memory databases).
    pub(crate) journal_mode: Option<JournalMode>,
    pub(crate) foreign_keys: bool,
}

impl SqliteOptions {
    /// The options of `cfg` (a sqlite config), checked.
    pub(crate) fn from_config(cfg: &ConnectionConfig) -> Result<Self, ConfigError> {
        let memory = cfg.path.as_deref() == Some(Path::new(MEMORY));
        let bad =
            |key: &str, why: String| ConfigError::new(format!("connection.options.{key}"), why);
        let mut mode = OpenMode::Rwc;
        let mut busy_timeout = DEFAULT_BUSY_TIMEOUT;
        let mut journal_mode = None;
        let mut foreign_keys = true;
        for (key, value) in &cfg.options {
            match key.as_str() {
                "mode" => {
                    mode = match value.as_str() {
                        "ro" => OpenMode::Ro,
                        "rw" => OpenMode::Rw,
                        "rwc" => OpenMode::Rwc,
                        _ => return Err(bad(key, "is not one of ro, rw, rwc".into())),
                    };
                    if memory && mode != OpenMode::Rwc {
                        return Err(bad(
                            key,
                            "must be rwc for an in-memory database (it starts empty)".into(),
                        ));
                    }
                }
                "busy_timeout" => {
                    let d = parse_millis_or_duration(value).ok_or_else(|| {
                        bad(key, "is not a duration (e.g. `5s`, `250ms`, `5000`)".into())
                    })?;
                    if d > MAX_BUSY_TIMEOUT {
                        return Err(bad(
                            key,
                            "must be at most 24 days (SQLite counts it in milliseconds, in a 32-bit int)".into(),
                        ));
                    }
                    if d.subsec_nanos() % 1_000_000 != 0 {
                        // Truncated, `500us` would become 0: fail at once when busy.
                        return Err(bad(
                            key,
                            "must be a whole number of milliseconds (SQLite counts it in milliseconds)".into(),
                        ));
                    }
                    busy_timeout = d;
                }
                "journal_mode" => {
                    if memory {
                        return Err(bad(key, "cannot be set for an in-memory database".into()));
                    }
                    journal_mode = Some(match value.to_ascii_lowercase().as_str() {
                        "wal" => JournalMode::Wal,
                        "delete" => JournalMode::Delete,
                        "truncate" => JournalMode::Truncate,
                        "persist" => JournalMode::Persist,
                        "memory" => JournalMode::Memory,
                        "off" => JournalMode::Off,
                        _ => {
                            return Err(bad(
                                key,
                                "is not one of wal, delete, truncate, persist, memory, off".into(),
                            ))
                        }
                    });
                }
                "foreign_keys" => {
                    foreign_keys = match value.as_str() {
                        "on" | "true" | "1" => true,
                        "off" | "false" | "0" => false,
                        _ => return Err(bad(key, "is not one of on, off, true, false".into())),
                    };
                }
                _ => {
                    return Err(ConfigError::new(
                        "connection.options",
                        format!(
                        "key `{key}` is not known to the sqlite backend (known: {KNOWN_OPTIONS})"
                    ),
                    ))
                }
            }
        }
        if mode == OpenMode::Ro && journal_mode.is_some() {
            return Err(bad(
                "journal_mode",
                "cannot be set with mode=ro (changing it writes to the database)".into(),
            ));
        }
        if journal_mode.is_none() && !memory && mode != OpenMode::Ro {
            journal_mode = Some(JournalMode::Wal);
        }
        Ok(Self {
            mode,
            busy_timeout,
            journal_mode,
            foreign_keys,
        })
    }
}

/// `"5000"` (milliseconds, as `PRAGMA busy_timeout`) or a humantime duration (`"5s"`).
fn parse_millis_or_duration(s: &str) -> Option<Duration> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok().map(Duration::from_millis);
    }
    humantime_serde::re::humantime::parse_duration(s).ok()
}
