//! SQLite configs: a file path ([`ConnectionConfig::path`]) instead of hosts. Reading
//! `sqlite:` URLs, validating (the sqlite branch of [`ConnectionConfig::validate`]), the
//! options ([`SqliteOptions`]), writing the URL back out, and the canonical path the pool key
//! covers. Pure: no SQLite library needed, so configs validate with or without the `sqlite`
//! feature.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::url::{percent_decode, percent_encode};
use super::{ConnectionConfig, TlsConfig, RESERVED_KEYS};
use crate::error::ConfigError;
use crate::limits;

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
    /// `ro`
    ReadOnly,
    /// `rw`: the file must exist.
    ReadWrite,
    /// `rwc` (the default): created if missing.
    ReadWriteCreate,
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
        let mut mode = OpenMode::ReadWriteCreate;
        let mut busy_timeout = DEFAULT_BUSY_TIMEOUT;
        let mut journal_mode = None;
        let mut foreign_keys = true;
        for (key, value) in &cfg.options {
            match key.as_str() {
                "mode" => {
                    mode = match value.as_str() {
                        "ro" => OpenMode::ReadOnly,
                        "rw" => OpenMode::ReadWrite,
                        "rwc" => OpenMode::ReadWriteCreate,
                        _ => return Err(bad(key, "is not one of ro, rw, rwc".into())),
                    };
                    if memory && mode != OpenMode::ReadWriteCreate {
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
                _ => return Err(ConfigError::new(
                    "connection.options",
                    format!(
                        "key `{key}` is not known to the sqlite backend (known: {KNOWN_OPTIONS})"
                    ),
                )),
            }
        }
        if mode == OpenMode::ReadOnly && journal_mode.is_some() {
            return Err(bad(
                "journal_mode",
                "cannot be set with mode=ro (changing it writes to the database)".into(),
            ));
        }
        if journal_mode.is_none() && !memory && mode != OpenMode::ReadOnly {
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

/// `path` made absolute and canonical, for the pool key and for opening: the parent
/// directory resolved by the file system (symlinks, `.`, `..`) when it exists, else
/// lexically; then the file name. `:memory:` stays as it is.
pub(crate) fn canonical_path(path: &Path) -> PathBuf {
    if path == Path::new(MEMORY) {
        return path.to_path_buf();
    }
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => path.to_path_buf(),
        }
    };
    let lexical = normalize(&absolute);
    match (lexical.parent(), lexical.file_name()) {
        (Some(parent), Some(name)) => match parent.canonicalize() {
            Ok(dir) => dir.join(name),
            Err(_) => lexical,
        },
        _ => lexical,
    }
}

/// Drop `.` components and resolve `..` against the preceding component.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A parameter that has a field of its own, as the other URLs spell it.
fn reserved_field(key: &str) -> &'static str {
    match key {
        "sslmode" | "ssl_mode" => "connection.tls.mode",
        "sslrootcert" | "ssl_ca" => "connection.tls.ca_file",
        "sslcert" | "ssl_cert" => "connection.tls.client_cert",
        "sslkey" | "ssl_key" => "connection.tls.client_key",
        "application_name" => "connection.application_name",
        "password" => "connection.password",
        "user" => "connection.user",
        _ => "connection.database",
    }
}

impl ConnectionConfig {
    /// The sqlite branch of [`validate`](Self::validate).
    pub(super) fn validate_sqlite(&self) -> Result<(), ConfigError> {
        let not_for_sqlite = |field: &str| {
            ConfigError::new(
                field,
                "cannot be set for sqlite: a SQLite database is a file (`connection.path`)",
            )
        };
        if !self.hosts.is_empty() {
            return Err(ConfigError::new(
                "connection.hosts",
                "must be empty for sqlite: a SQLite database is a file (`connection.path`), not a host",
            ));
        }
        let path = self.path.as_ref().ok_or_else(|| {
            ConfigError::new(
                "connection.path",
                "must be set for sqlite (a file or `:memory:`)",
            )
        })?;
        let text = path
            .to_str()
            .ok_or_else(|| ConfigError::new("connection.path", "must be valid UTF-8"))?;
        limits::check_name("connection.path", text)?;
        if text != MEMORY && (text.ends_with('/') || path.file_name().is_none()) {
            return Err(ConfigError::new(
                "connection.path",
                "must name a file, not a directory",
            ));
        }
        if self.database.is_some() {
            return Err(not_for_sqlite("connection.database"));
        }
        if self.user.is_some() {
            return Err(not_for_sqlite("connection.user"));
        }
        if self.password.is_some() {
            return Err(not_for_sqlite("connection.password"));
        }
        if self.application_name.is_some() {
            return Err(not_for_sqlite("connection.application_name"));
        }
        let tls = TlsConfig::default();
        if self.tls.mode != tls.mode {
            return Err(not_for_sqlite("connection.tls.mode"));
        }
        for (field, set) in [
            ("connection.tls.ca_file", &self.tls.ca_file),
            ("connection.tls.client_cert", &self.tls.client_cert),
            ("connection.tls.client_key", &self.tls.client_key),
        ] {
            if set.is_some() {
                return Err(not_for_sqlite(field));
            }
        }
        for (k, v) in &self.options {
            limits::check_name("connection.options", k)
                .map_err(|e| ConfigError::new(e.field, format!("has a key that {}", e.reason)))?;
            if RESERVED_KEYS.contains(&k.as_str()) {
                return Err(ConfigError::new(
                    "connection.options",
                    format!("key `{k}` is not an option: it has a field of its own"),
                ));
            }
            limits::check_text(&format!("connection.options.{k}"), v)?;
        }
        SqliteOptions::from_config(self).map(|_| ())
    }

    /// Whether this is a SQLite config of an in-memory database.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn is_sqlite_memory(&self) -> bool {
        self.backend == "sqlite" && self.path.as_deref() == Some(Path::new(MEMORY))
    }

    /// Parse what follows `sqlite:` (see [`parse`](Self::parse)).
    pub(super) fn parse_sqlite(rest: &str) -> Result<Self, ConfigError> {
        let url = |reason: &str| ConfigError::new("connection.url", reason);
        if rest.contains('#') {
            return Err(url(
                "contains `#`: fragments are not supported; percent-encode `#` as %23 in a path",
            ));
        }
        if rest.matches('?').count() > 1 {
            return Err(url(
                "has more than one `?`: percent-encode `?` in a path or value as %3F",
            ));
        }
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let raw_path = match body.strip_prefix("//") {
            Some(MEMORY) => MEMORY,
            Some(after) => {
                check_no_host(after)?;
                after
            }
            None => body,
        };
        let path = percent_decode(raw_path).ok_or_else(|| {
            ConfigError::new(
                "connection.path",
                "has invalid percent-encoding (`%` must start two hex digits, and the text must be UTF-8)",
            )
        })?;
        let mut options = BTreeMap::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            if pair.contains('+') {
                return Err(url(
                    "has `+` in the query, which may mean a space or a plus: write %20 or %2B",
                ));
            }
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| url("has a query parameter that is not `key=value`"))?;
            let k = percent_decode(k)
                .ok_or_else(|| url("has a query parameter name with invalid percent-encoding"))?;
            if RESERVED_KEYS.contains(&k.as_str()) {
                return Err(ConfigError::new(
                    reserved_field(&k),
                    "cannot be set for sqlite: a SQLite database is a file (`connection.path`)",
                ));
            }
            let v = percent_decode(v).ok_or_else(|| {
                ConfigError::new(
                    "connection.options",
                    "has a value with invalid percent-encoding",
                )
            })?;
            if options.insert(k, v).is_some() {
                return Err(ConfigError::new(
                    "connection.options",
                    "has a parameter given twice in the URL",
                ));
            }
        }
        let mut cfg = ConnectionConfig::sqlite(path);
        cfg.options = options;
        cfg.validate()?;
        Ok(cfg)
    }

    /// `sqlite::memory:`, `sqlite:///abs/path` or `sqlite://relative/path`, then the options
    /// as a query when `query`.
    pub(super) fn write_sqlite_url(&self, f: &mut impl fmt::Write, query: bool) -> fmt::Result {
        match self.path.as_deref() {
            Some(p) if p == Path::new(MEMORY) => f.write_str("sqlite::memory:")?,
            Some(p) => write!(f, "sqlite://{}", percent_encode(&p.to_string_lossy(), b"/"))?,
            None => f.write_str("sqlite://")?,
        }
        if query {
            for (i, (k, v)) in self.options.iter().enumerate() {
                let sep = if i == 0 { '?' } else { '&' };
                write!(
                    f,
                    "{sep}{}={}",
                    percent_encode(k, b"/:"),
                    percent_encode(v, b"/:")
                )?;
            }
        }
        Ok(())
    }
}

/// What follows `sqlite://` is a path; refuse what reads as an authority (user info, a
/// host and port) rather than guess which was meant.
fn check_no_host(after: &str) -> Result<(), ConfigError> {
    if let Some((info, _)) = after.split_once('@') {
        let field = if info.contains(':') {
            "connection.password"
        } else {
            "connection.user"
        };
        return Err(ConfigError::new(
            field,
            "cannot be set for sqlite (a raw `@` reads as user info: percent-encode it as %40 in a path)",
        ));
    }
    if after.starts_with('/') {
        return Ok(());
    }
    let first = after.split('/').next().unwrap_or_default();
    if first.starts_with('[') || first.eq_ignore_ascii_case("localhost") {
        return Err(ConfigError::new(
            "connection.hosts",
            "cannot be set for sqlite: it takes a file path (sqlite:///abs/path.db or sqlite://relative.db), not a host",
        ));
    }
    if let Some((_, port)) = first.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::new(
                "connection.hosts[0].port",
                "cannot be set for sqlite: it takes a file path (sqlite:///abs/path.db or sqlite://relative.db), not a host and port",
            ));
        }
        return Err(ConfigError::new(
            "connection.url",
            "has `:` in the first path segment, which reads as host:port: percent-encode it as %3A",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
