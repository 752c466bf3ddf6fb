//! Where and how to connect: plain data, parsed from URLs or deserialized from TOML.
//!
//! The URL syntax is documented on [`ConnectionConfig::parse`] (in `url.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::limits::{self, validated_config};
use crate::secret::Secret;

mod identity;
mod sqlite;
mod sqlite_options;
mod url;

#[cfg_attr(not(feature = "sqlite"), allow(unused_imports))]
pub(crate) use sqlite::canonical_path;
#[cfg_attr(not(feature = "sqlite"), allow(unused_imports))]
pub(crate) use sqlite_options::{OpenMode, SqliteOptions};

/// TLS negotiation mode, with libpq's `sslmode` meanings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it (the default, as in libpq).
    #[default]
    Prefer,
    /// Require TLS, without verifying the certificate.
    Require,
    /// Require TLS and verify the certificate chain and the host name.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, ConfigError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-full" | "verify-ca" => SslMode::VerifyFull,
            _ => {
                return Err(ConfigError::new(
                    "connection.tls.mode",
                    "is not one of disable, allow, prefer, require, verify-ca, verify-full",
                ))
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// TLS settings of a connection.
///
/// Paths must be non-empty UTF-8 without control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Negotiation mode. Default `prefer`.
    pub mode: SslMode,
    /// PEM file with the CA certificate(s) to trust. Default: none (system roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate. Default: none.
    pub client_cert: Option<PathBuf>,
    /// PEM client private key. Default: none.
    pub client_key: Option<PathBuf>,
}

/// One server address.
///
/// Validated as part of its [`ConnectionConfig`], however that was made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Host name, IPv4 address, IPv6 address (without brackets), or, for PostgreSQL, a Unix
    /// socket directory (starting with `/`). Not empty, no control characters; a host name
    /// holds no whitespace or `/ ? # @ [ ] \ , %`; a host with `:` must be an IPv6 address.
    pub host: String,
    /// TCP port, 1 to 65535.
    pub port: u16,
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Host {
    /// A Unix socket directory (a path), not a network host.
    pub(crate) fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let field = || format!("connection.hosts[{i}].host");
        limits::check_name(&field(), &self.host)?;
        if self.port == 0 {
            return Err(ConfigError::new(
                format!("connection.hosts[{i}].port"),
                "must be between 1 and 65535, got 0",
            ));
        }
        if self.is_unix_socket() {
            return Ok(()); // a Unix socket directory
        }
        if self.host.contains(':') {
            if self.host.parse::<Ipv6Addr>().is_err() {
                return Err(ConfigError::new(
                    field(),
                    "contains `:` but is not an IPv6 address (without brackets; the port goes in `port`)",
                ));
            }
            return Ok(());
        }
        if let Some(c) = self
            .host
            .chars()
            .find(|c| c.is_whitespace() || "/?#@[]\\,%".contains(*c))
        {
            return Err(ConfigError::new(
                field(),
                format!("contains `{c}`, which cannot be part of a host name"),
            ));
        }
        Ok(())
    }
}

/// Query parameters with a field of their own: never options.
const RESERVED_KEYS: &[&str] = &[
    "sslmode",
    "ssl_mode",
    "sslrootcert",
    "ssl_ca",
    "sslcert",
    "ssl_cert",
    "sslkey",
    "ssl_key",
    "application_name",
    "password",
    "user",
    "dbname",
];

validated_config! {
/// Everything needed to open a connection to one endpoint.
///
/// `Debug` and `Display` redact the password; [`PoolKey`](crate::PoolKey) never covers it.
/// [`to_url_with_password`](Self::to_url_with_password) is the one way to print it.
///
/// However a config is made (parsed from a URL, deserialized, or built in code), the same
/// [`validate`](Self::validate) decides whether it is usable; [`parse`](Self::parse) and
/// deserialization run it before returning.
///
/// ```
/// use poolwarden::ConnectionConfig;
/// let cfg = ConnectionConfig::parse("postgres://app:s3cret@db1:5433/orders?application_name=api")?;
/// assert_eq!(cfg.backend, "postgres");
/// assert_eq!(cfg.hosts[0].port, 5433);
/// assert_eq!(cfg.application_name.as_deref(), Some("api"));
/// assert!(!format!("{cfg:?} {cfg}").contains("s3cret"));
///
/// // Ambiguous input is refused, not guessed at.
/// let field = |url| ConnectionConfig::parse(url).unwrap_err().field;
/// assert_eq!(field("postgres://::1/db"), "connection.url");
/// assert_eq!(field("postgres://[::1]:0/db"), "connection.hosts[0].port");
/// assert_eq!(field("postgres://app:pass/word@db/orders"), "connection.url");
/// # Ok::<(), poolwarden::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionConfig {
    /// Backend kind: `postgres`, `redis`, `mysql`, `sim`, `sqlite`, or a custom adapter's
    /// name (ASCII letters, digits, `+ - . _`).
    pub backend: String,
    /// One or more server addresses (several for multi-host connection strings). See
    /// [`Host`] for what a host may be. Required (non-empty) for every backend but
    /// `sqlite`, for which it must be empty: a SQLite database is a [`path`](Self::path).
    #[serde(default)]
    pub hosts: Vec<Host>,
    /// Database name (PostgreSQL, MySQL) or number (Redis). Default: none; when set, not
    /// empty and without control characters.
    #[serde(default)]
    pub database: Option<String>,
    /// User name. Default: none; when set, not empty and without control characters.
    #[serde(default)]
    pub user: Option<String>,
    /// Password. Never printed, never serialized, never part of a pool key. No control
    /// characters.
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
    /// TLS settings. Default: `prefer`, system roots, no client certificate.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Application name reported to the server. Default: none; when set, not empty and
    /// without control characters.
    #[serde(default)]
    pub application_name: Option<String>,
    /// Backend-specific options (`statement_timeout`, `connect_timeout`, simulator knobs…).
    /// Every option is part of the pool key. Default: empty. Keys are not empty, and neither
    /// keys nor values hold control characters; the URL parameters that have a field of their
    /// own (`sslmode`, `password`, `user`, `dbname`, `application_name`, the TLS files) are
    /// not options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// SQLite only (and required there): the database file, absolute or relative to the
    /// current directory, or `:memory:` for an in-memory database. Default: none; must be
    /// none for every other backend. Not empty, UTF-8, no control characters, naming a file
    /// (not ending in `/`). A SQLite config has no hosts, user, password, database,
    /// application name or TLS settings: any of them is an error naming the field.
    ///
    /// The [pool key](crate::PoolKey) covers the *canonical* path (the parent directory
    /// resolved through symlinks, `.` and `..`, plus the file name; the file need not exist
    /// yet), so `sqlite://./a.db` and `sqlite:///<cwd>/a.db` are one pool. A relative path is
    /// resolved against the current directory each time the key is computed or a connection
    /// opened. Every `:memory:` config with the same options has the same key, and each pool
    /// of one [`SqliteBackend`](crate::backends) value gets one in-memory database shared by
    /// its connections (it lives while one of them is open).
    ///
    /// SQLite [`options`](Self::options) (unknown keys and bad values are errors naming
    /// `connection.options…`):
    ///
    /// | option | values | default |
    /// |---|---|---|
    /// | `mode` | `ro` (read only), `rw` (read-write, the file must exist), `rwc` (read-write, created if missing) | `rwc` |
    /// | `busy_timeout` | how long a statement waits for a lock held by another connection: `5s`, `250ms`, or milliseconds (`5000`); `0` = fail at once; at most 24 days | `5s` |
    /// | `journal_mode` | `wal`, `delete`, `truncate`, `persist`, `memory`, `off` (files; not with `mode=ro`) | `wal` for files opened read-write |
    /// | `foreign_keys` | `on` / `off` (`true` / `false`) | `on` |
    ///
    /// ```
    /// use poolwarden::ConnectionConfig;
    /// let from_url = ConnectionConfig::parse("sqlite://data/app.db?busy_timeout=2s")?;
    /// let from_toml: ConnectionConfig = toml::from_str(
    ///     "backend = \"sqlite\"\npath = \"data/app.db\"\noptions = { busy_timeout = \"2s\" }",
    /// ).unwrap();
    /// assert_eq!(from_url, from_toml);
    /// let mut code = ConnectionConfig::sqlite("data/app.db");
    /// code.options.insert("busy_timeout".into(), "2s".into());
    /// assert_eq!(code, from_url);
    /// assert_eq!(code.to_string(), "sqlite://data/app.db");
    /// assert_eq!(code.primary_host(), "data/app.db");
    ///
    /// code.user = Some("app".into());
    /// assert_eq!(code.validate().unwrap_err().field, "connection.user");
    /// # Ok::<(), poolwarden::ConfigError>(())
    /// ```
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}
fields: ConnectionConfigFields, #[serde(deny_unknown_fields)];
}

fn default_port(backend: &str) -> Option<u16> {
    match backend {
        "postgres" => Some(5432),
        "redis" => Some(6379),
        "mysql" => Some(3306),
        "sim" => Some(1),
        _ => None,
    }
}

/// The option keys the postgres backend reads (its parser refuses others too).
pub(crate) const POSTGRES_OPTIONS: &[&str] = &[
    "connect_timeout",
    "statement_timeout",
    "options",
    "reset",
    "target_session_attrs",
    "pooler",
];

impl ConnectionConfig {
    /// A config for `backend` at `host:port` with nothing else set.
    pub fn new(backend: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Self {
            backend: backend.into(),
            hosts: vec![Host {
                host: host.into(),
                port,
            }],
            database: None,
            user: None,
            password: None,
            tls: TlsConfig::default(),
            application_name: None,
            options: BTreeMap::new(),
            path: None,
        }
    }

    /// A config for the simulated backend: `sim://name/`.
    pub fn sim(name: impl Into<String>) -> Self {
        Self::new("sim", name, 1)
    }

    /// Check the fields; the error names the first bad one. [`parse`](Self::parse) and
    /// deserialization run this too; a config built in code should be checked with it (the
    /// supervisor does).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backend.is_empty() {
            return Err(ConfigError::new("connection.backend", "must not be empty"));
        }
        if !self
            .backend
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._".contains(&b))
        {
            return Err(ConfigError::new(
                "connection.backend",
                "must be ASCII letters, digits, `+`, `-`, `.` or `_`",
            ));
        }
        if self.backend == "sqlite" {
            return self.validate_sqlite();
        }
        if self.path.is_some() {
            return Err(ConfigError::new(
                "connection.path",
                "is for the sqlite backend only; this backend connects to `hosts`",
            ));
        }
        if self.hosts.is_empty() {
            return Err(ConfigError::new(
                "connection.hosts",
                "must name at least one host",
            ));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            h.validate(i)?;
        }
        if let Some(d) = &self.database {
            limits::check_name("connection.database", d)?;
        }
        if let Some(u) = &self.user {
            limits::check_name("connection.user", u)?;
        }
        if let Some(p) = &self.password {
            p.check("connection.password")?;
        }
        for (field, path) in [
            ("connection.tls.ca_file", &self.tls.ca_file),
            ("connection.tls.client_cert", &self.tls.client_cert),
            ("connection.tls.client_key", &self.tls.client_key),
        ] {
            if let Some(path) = path {
                let text = path
                    .to_str()
                    .ok_or_else(|| ConfigError::new(field, "must be valid UTF-8"))?;
                limits::check_name(field, text)?;
            }
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err(ConfigError::new(
                "connection.tls.client_key",
                "client_cert and client_key must be given together",
            ));
        }
        if let Some(a) = &self.application_name {
            limits::check_name("connection.application_name", a)?;
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
        self.check_option_keys()
    }

    /// For a built-in backend, each option key must be one it reads (a misspelt
    /// `wait_timout` is an error naming it when the config is checked, not a setting that
    /// silently does nothing, or an error at the first connect, while it still changes the
    /// pool key). SQLite's options are checked in full by `validate_sqlite`; a custom
    /// backend's options are its own.
    fn check_option_keys(&self) -> Result<(), ConfigError> {
        let known: &[&str] = match self.backend.as_str() {
            "postgres" | "postgresql" => POSTGRES_OPTIONS,
            "mysql" | "mariadb" => &["reset", "wait_timeout", "prefer_socket"],
            "redis" => &["response_timeout"],
            "sim" => &[
                "connect_latency",
                "query_latency",
                "connect_failure_rate",
                "query_failure_rate",
            ],
            _ => return Ok(()),
        };
        match self.options.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(ConfigError::new(
                format!("connection.options.{k}"),
                format!(
                    "is not an option of the {} backend (known: {})",
                    self.backend,
                    known.join(", ")
                ),
            )),
        }
    }

    /// The first host as `host:port`; for SQLite (no hosts) the [`path`](Self::path) as
    /// written (`:memory:` for an in-memory database).
    pub fn primary_host(&self) -> String {
        match (self.hosts.first(), &self.path) {
            (Some(h), _) => h.to_string(),
            (None, Some(p)) => p.to_string_lossy().into_owned(),
            (None, None) => String::new(),
        }
    }
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("backend", &self.backend)
            .field("hosts", &self.hosts)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("application_name", &self.application_name)
            .field("options", &self.options)
            .field("path", &self.path)
            .finish()
    }
}

/// A URL without its query, the password replaced by `***`; names are percent-encoded as in
/// [`to_url_with_password`](ConnectionConfig::to_url_with_password).
impl fmt::Display for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_redacted(f)
    }
}

#[cfg(test)]
mod tests;
