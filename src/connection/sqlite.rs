//! SQLite configs: a file path ([`ConnectionConfig::path`]) instead of hosts. Reading
//! `sqlite:` URLs, validating (the sqlite branch of [`ConnectionConfig::validate`]), the
//! options ([`SqliteOptions`]), writing the URL back out, and the canonical path the pool key
//! covers. Pure: no SQLite library needed, so configs validate with or without the `sqlite`
//! feature.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::url::{percent_decode, percent_encode};
use super::{ConnectionConfig, TlsConfig, RESERVED_KEYS};
use crate::error::ConfigError;
use crate::limits;

pub(crate) use super::sqlite_options::SqliteOptions;
pub(crate) use super::sqlite_options::MEMORY;
#[cfg(test)]
use super::sqlite_options::{JournalMode, OpenMode};
#[cfg(test)]
use std::time::Duration;

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
    /// A config for a SQLite database at `path` (a file, absolute or relative to the
    /// current directory, or `:memory:`), with nothing else set.
    ///
    /// ```
    /// use poolwarden::ConnectionConfig;
    /// let c = ConnectionConfig::sqlite("/var/lib/app/app.db");
    /// assert_eq!(c, ConnectionConfig::parse("sqlite:///var/lib/app/app.db")?);
    /// assert_eq!(ConnectionConfig::sqlite(":memory:"), ConnectionConfig::parse("sqlite::memory:")?);
    /// # Ok::<(), poolwarden::ConfigError>(())
    /// ```
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self {
            backend: "sqlite".into(),
            hosts: Vec::new(),
            database: None,
            user: None,
            password: None,
            tls: TlsConfig::default(),
            application_name: None,
            options: BTreeMap::new(),
            path: Some(path.into()),
        }
    }

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
