//! Where and how to connect: plain data, parsed from URLs or deserialized from TOML.
//!
//! # URL syntax
//!
//! `scheme://[user[:password]@]host[:port][,host[:port]…][/database][?key=value&…]`, read
//! strictly, so that nothing is guessed:
//!
//! - The host list ends at the first `/` or `?`. A raw `@` may appear once, and only there:
//!   as the separator of the user info. A `/`, `?`, `#` or `@` in a user name, password or
//!   database name must be percent-encoded (`%2F`, `%3F`, `%23`, `%40`); otherwise the URL
//!   is refused, because it cannot be told apart from a different host list or database.
//! - `#` (a fragment) is refused anywhere, as are control characters, raw or
//!   percent-encoded. Other characters stand for themselves.
//! - The user info splits at its first `:`; user, password, host names, database, query
//!   names and values are percent-decoded (RFC 3986: `+` is not a space, so a raw `+` in the
//!   query is refused as ambiguous; write `%2B` or `%20`). Decoded text must be UTF-8 and
//!   hold no control character.
//! - An IPv6 address must be in brackets: `[::1]` or `[::1]:5432`. Ports are decimal digits,
//!   1 to 65535. An empty host (`a,,b`), an empty port (`h:`) or `:` in an unbracketed host is
//!   refused. An entry of the host list that cannot be read is a `connection.url` error; a
//!   value that is read but refused names its field (`connection.hosts[1].port` for port 0).
//! - One `?` starts the query; another raw `?` is refused. Each query parameter is
//!   `key=value`, given once (aliases included); `password`, `user`
//!   and `dbname` may not repeat what the user info or path already says.
//!
//! Errors name the field (`connection.url`, `connection.hosts[1].port`,
//! `connection.password`…) and quote nothing from the input, so a mistyped URL cannot carry
//! its password into a log.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::Ipv6Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::limits::{self, validated_config};
use crate::secret::Secret;

mod identity;

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
    fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let field = || format!("connection.hosts[{i}].host");
        limits::check_name(&field(), &self.host)?;
        if self.port == 0 {
            return Err(ConfigError::new(
                format!("connection.hosts[{i}].port"),
                "must be between 1 and 65535, got 0",
            ));
        }
        if self.host.starts_with('/') {
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
    /// Backend kind: `postgres`, `redis`, `mysql`, `sim`, or a custom adapter's name (ASCII
    /// letters, digits, `+ - . _`).
    pub backend: String,
    /// One or more server addresses (several for multi-host connection strings). See
    /// [`Host`] for what a host may be.
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

/// What `write_url` does with the password.
#[derive(Clone, Copy, PartialEq)]
enum Password {
    Redacted,
    Exposed,
}

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
        }
    }

    /// A config for the simulated backend: `sim://name/`.
    pub fn sim(name: impl Into<String>) -> Self {
        Self::new("sim", name, 1)
    }

    /// Parse a `postgres://`, `postgresql://`, `redis://`, `rediss://`, `mysql://`,
    /// `mariadb://` or `sim://` URL. See the [module docs](self) for the exact syntax: input
    /// that could mean two things is refused rather than guessed at.
    ///
    /// Query parameters: `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `application_name`,
    /// `password`, `user`, `dbname`; any other becomes an entry of [`options`](Self::options).
    /// Several hosts may be given as `host1:5432,host2:5433`. The result is validated
    /// ([`validate`](Self::validate)).
    pub fn parse(input: &str) -> Result<Self, ConfigError> {
        let url = |reason: &str| ConfigError::new("connection.url", reason);
        if let Some((at, c)) = input.char_indices().find(|(_, c)| c.is_control()) {
            return Err(ConfigError::new(
                "connection.url",
                format!(
                    "contains the control character U+{:04X} at byte {at}",
                    c as u32
                ),
            ));
        }
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| url("is not a URL: expected `scheme://host/...`"))?;
        let (backend, tls_by_scheme) = match scheme {
            "postgres" | "postgresql" => ("postgres", None),
            "redis" => ("redis", None),
            "rediss" => ("redis", Some(SslMode::VerifyFull)),
            "mysql" | "mariadb" => ("mysql", None),
            "sim" => ("sim", None),
            _ => {
                return Err(url(
                    "has an unsupported scheme (expected postgres, postgresql, redis, rediss, mysql, mariadb or sim)",
                ))
            }
        };
        if rest.contains('#') {
            return Err(url(
                "contains `#`: fragments are not supported; percent-encode `#` as %23 in a password or name",
            ));
        }

        // The host list ends at the first `/` or `?`; a raw `@` may only separate the user
        // info from it. Anything else means a delimiter was left unescaped in the user info,
        // and the hosts, port and database cannot be told apart from it.
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if tail.contains('@') {
            return Err(url(
                "has `@` after the host list: percent-encode `/`, `?` and `@` in a user name, password or database (%2F, %3F, %40)",
            ));
        }
        if authority.matches('@').count() > 1 {
            return Err(url(
                "has more than one `@`: percent-encode `@` in a user name or password as %40",
            ));
        }
        let (userinfo, hostlist) = match authority.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };

        let decode = |field: &str, s: &str| -> Result<String, ConfigError> {
            percent_decode(s).ok_or_else(|| {
                ConfigError::new(
                    field,
                    "has invalid percent-encoding (`%` must start two hex digits, and the text must be UTF-8)",
                )
            })
        };
        let (mut user, mut password) = (None, None);
        if let Some(info) = userinfo {
            let (u, p) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            if !u.is_empty() {
                user = Some(decode("connection.user", u)?);
            }
            if let Some(p) = p {
                password = Some(Secret::new(decode("connection.password", p)?));
            }
        }

        let port_default = default_port(backend);
        let mut hosts = Vec::new();
        for (i, part) in hostlist.split(',').enumerate() {
            hosts.push(parse_host(i, part, port_default)?);
        }

        if tail.matches('?').count() > 1 {
            return Err(url(
                "has more than one `?`: percent-encode `?` in a query value as %3F",
            ));
        }
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        let path = path.strip_prefix('/').unwrap_or(path);
        if path.contains('/') {
            return Err(ConfigError::new(
                "connection.database",
                "contains `/`: percent-encode it as %2F",
            ));
        }
        let database = match path {
            "" => None,
            p => Some(decode("connection.database", p)?),
        };

        let mut cfg = ConnectionConfig {
            backend: backend.to_string(),
            hosts,
            database,
            user,
            password,
            tls: TlsConfig {
                mode: tls_by_scheme.unwrap_or_default(),
                ..TlsConfig::default()
            },
            application_name: None,
            options: BTreeMap::new(),
        };
        let mut seen: Vec<&'static str> = Vec::new();
        let mut once = |field: &'static str| {
            if seen.contains(&field) {
                return Err(ConfigError::new(field, "is given twice in the URL"));
            }
            seen.push(field);
            Ok(())
        };
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
            let field = match k.as_str() {
                "sslmode" | "ssl_mode" => "connection.tls.mode",
                "sslrootcert" | "ssl_ca" => "connection.tls.ca_file",
                "sslcert" | "ssl_cert" => "connection.tls.client_cert",
                "sslkey" | "ssl_key" => "connection.tls.client_key",
                "application_name" => "connection.application_name",
                "password" => "connection.password",
                "user" => "connection.user",
                "dbname" => "connection.database",
                _ => "connection.options",
            };
            let v = decode(field, v)?;
            match field {
                "connection.tls.mode" => {
                    once(field)?;
                    cfg.tls.mode = SslMode::parse(&v)?;
                    if tls_by_scheme.is_some()
                        && matches!(cfg.tls.mode, SslMode::Disable | SslMode::Prefer)
                    {
                        return Err(ConfigError::new(
                            field,
                            "contradicts `rediss://`, which requires TLS: use require or verify-full",
                        ));
                    }
                }
                "connection.tls.ca_file" => {
                    once(field)?;
                    cfg.tls.ca_file = Some(v.into());
                }
                "connection.tls.client_cert" => {
                    once(field)?;
                    cfg.tls.client_cert = Some(v.into());
                }
                "connection.tls.client_key" => {
                    once(field)?;
                    cfg.tls.client_key = Some(v.into());
                }
                "connection.application_name" => {
                    once(field)?;
                    cfg.application_name = Some(v);
                }
                "connection.password" => {
                    if cfg.password.is_some() {
                        return Err(ConfigError::new(field, "is given twice in the URL"));
                    }
                    cfg.password = Some(Secret::new(v));
                }
                "connection.user" => {
                    if cfg.user.is_some() {
                        return Err(ConfigError::new(field, "is given twice in the URL"));
                    }
                    cfg.user = Some(v);
                }
                "connection.database" => {
                    if cfg.database.is_some() {
                        return Err(ConfigError::new(field, "is given twice in the URL"));
                    }
                    cfg.database = Some(v);
                }
                _ => {
                    if cfg.options.contains_key(&k) {
                        return Err(ConfigError::new(
                            field,
                            "has a parameter given twice in the URL",
                        ));
                    }
                    cfg.options.insert(k, v);
                }
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// This config as a URL that [`parse`](Self::parse) reads back to an equal config,
    /// **password included, in clear** (percent-encoded). It exposes the secret: hand it to a
    /// driver or a secret store, never to a log. `Display` is the redacted form.
    ///
    /// Every port is written out; the TLS mode when it is not `prefer`; TLS files,
    /// `application_name` and options as query parameters. A custom backend's name is written
    /// as the scheme, which `parse` does not know.
    ///
    /// ```
    /// use poolwarden::ConnectionConfig;
    /// let cfg = ConnectionConfig::parse("postgres://app:p%2Fw%40rd@db/orders")?;
    /// assert_eq!(cfg.to_url_with_password(), "postgres://app:p%2Fw%40rd@db:5432/orders");
    /// assert_eq!(ConnectionConfig::parse(&cfg.to_url_with_password())?, cfg);
    /// # Ok::<(), poolwarden::ConfigError>(())
    /// ```
    pub fn to_url_with_password(&self) -> String {
        let mut out = String::new();
        self.write_url(&mut out, Password::Exposed, true)
            .expect("writing to a String cannot fail");
        out
    }

    fn write_url(&self, f: &mut impl fmt::Write, password: Password, query: bool) -> fmt::Result {
        write!(f, "{}://", self.backend)?;
        if self.user.is_some() || self.password.is_some() {
            if let Some(u) = &self.user {
                f.write_str(&percent_encode(u, b""))?;
            }
            if let Some(p) = &self.password {
                match password {
                    Password::Redacted => f.write_str(":***")?,
                    Password::Exposed => write!(f, ":{}", percent_encode(p.expose(), b""))?,
                }
            }
            f.write_char('@')?;
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            if h.host.contains(':') && h.host.parse::<Ipv6Addr>().is_ok() {
                write!(f, "[{}]:{}", h.host, h.port)?;
            } else {
                write!(f, "{}:{}", percent_encode(&h.host, b""), h.port)?;
            }
        }
        f.write_char('/')?;
        if let Some(db) = &self.database {
            f.write_str(&percent_encode(db, b""))?;
        }
        if !query {
            return Ok(());
        }
        let mut params: Vec<(&str, std::borrow::Cow<'_, str>)> = Vec::new();
        if self.tls.mode != SslMode::default() {
            params.push(("sslmode", self.tls.mode.as_str().into()));
        }
        for (k, v) in [
            ("sslrootcert", &self.tls.ca_file),
            ("sslcert", &self.tls.client_cert),
            ("sslkey", &self.tls.client_key),
        ] {
            if let Some(v) = v {
                params.push((k, v.to_string_lossy()));
            }
        }
        if let Some(a) = &self.application_name {
            params.push(("application_name", a.into()));
        }
        for (k, v) in &self.options {
            params.push((k, v.into()));
        }
        for (i, (k, v)) in params.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(
                f,
                "{sep}{}={}",
                percent_encode(k, b"/:"),
                percent_encode(v, b"/:")
            )?;
        }
        Ok(())
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
        Ok(())
    }

    /// The first host as `host:port`.
    pub fn primary_host(&self) -> String {
        self.hosts
            .first()
            .map(|h| h.to_string())
            .unwrap_or_default()
    }
}

/// One entry of a URL's host list: `host`, `host:port`, `[v6]` or `[v6]:port`.
///
/// An entry that cannot be read is a `connection.url` error (it is URL syntax, which no
/// other way of making a config has); a value read but refused names its field, as it would
/// from TOML (`connection.hosts[1].port` for port 0).
fn parse_host(i: usize, part: &str, port_default: Option<u16>) -> Result<Host, ConfigError> {
    let syntax = |what: &str| {
        ConfigError::new(
            "connection.url",
            format!("has a host list whose entry {} {what}", i + 1),
        )
    };
    let (host, port) = if let Some(inner) = part.strip_prefix('[') {
        let (addr, after) = inner
            .split_once(']')
            .ok_or_else(|| syntax("has `[` without `]`"))?;
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(syntax("has brackets that do not hold an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| syntax("has something other than `:port` after `]`"))?,
            ),
        };
        (addr.to_string(), port)
    } else {
        let (h, port) =
            match part.matches(':').count() {
                0 => (part, None),
                1 => part
                    .split_once(':')
                    .map(|(h, p)| (h, Some(p)))
                    .expect("one colon"),
                _ => return Err(syntax(
                    "looks like an IPv6 address without brackets: write `[addr]` or `[addr]:port`",
                )),
            };
        if h.is_empty() {
            return Err(syntax("has no host"));
        }
        let h = percent_decode(h).ok_or_else(|| {
            ConfigError::new(
                format!("connection.hosts[{i}].host"),
                "has invalid percent-encoding",
            )
        })?;
        (h, port)
    };
    let port = match port {
        Some("") => return Err(syntax("has an empty port after `:`")),
        Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(syntax("has a port that is not a number"))
        }
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p >= 1 => p,
            _ => {
                return Err(ConfigError::new(
                    format!("connection.hosts[{i}].port"),
                    "must be between 1 and 65535",
                ))
            }
        },
        None => port_default.ok_or_else(|| syntax("needs a port for this backend"))?,
    };
    Ok(Host { host, port })
}

/// RFC 3986 percent-decoding (`+` stays `+`); `None` for a stray `%` or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let digit = |b: u8| (b as char).to_digit(16);
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encode everything but RFC 3986's unreserved characters and `keep`.
fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
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
            .finish()
    }
}

/// A URL without its query, the password replaced by `***`; names are percent-encoded as in
/// [`to_url_with_password`](ConnectionConfig::to_url_with_password).
impl fmt::Display for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_url(f, Password::Redacted, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_url_with_everything() {
        let c = ConnectionConfig::parse(
            "postgresql://u%40x:p%2Fw@h1:5433,[::1]:5434/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=app&statement_timeout=5s",
        )
        .unwrap();
        assert_eq!(c.backend, "postgres");
        assert_eq!(c.user.as_deref(), Some("u@x"));
        assert_eq!(c.password.as_ref().unwrap().expose(), "p/w");
        assert_eq!(
            c.hosts,
            vec![
                Host {
                    host: "h1".into(),
                    port: 5433
                },
                Host {
                    host: "::1".into(),
                    port: 5434
                }
            ]
        );
        assert_eq!(c.database.as_deref(), Some("db"));
        assert_eq!(c.tls.mode, SslMode::VerifyFull);
        assert_eq!(
            c.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        assert_eq!(c.application_name.as_deref(), Some("app"));
        assert_eq!(c.options["statement_timeout"], "5s");
    }

    #[test]
    fn default_ports_per_scheme() {
        assert_eq!(
            ConnectionConfig::parse("redis://cache").unwrap().hosts[0].port,
            6379
        );
        assert_eq!(
            ConnectionConfig::parse("mysql://root@db/x").unwrap().hosts[0].port,
            3306
        );
        assert_eq!(
            ConnectionConfig::parse("postgres://db").unwrap().hosts[0].port,
            5432
        );
        let r = ConnectionConfig::parse("rediss://cache:7000/2").unwrap();
        assert_eq!(
            (r.tls.mode, r.database.as_deref()),
            (SslMode::VerifyFull, Some("2"))
        );
    }

    #[test]
    fn malformed_urls_name_the_field() {
        for bad in [
            "not a url",
            "ftp://x",
            "postgres://h:notaport/db",
            "postgres://h:0/db",
            "postgres://,h/db",
            "postgres://h/db?sslmode=sometimes",
            "postgres://u:%zz@h/db",
        ] {
            let e = ConnectionConfig::parse(bad).unwrap_err();
            assert!(e.field.starts_with("connection."), "{bad}: {e}");
        }
    }

    #[test]
    fn password_is_redacted_everywhere() {
        let c = ConnectionConfig::parse("postgres://u:hunter2@h/db").unwrap();
        let shown = format!("{c} {c:?} {:#?}", c);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"));
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
    }

    #[test]
    fn deserializes_from_toml() {
        let c: ConnectionConfig = toml::from_str(
            r#"
            backend = "postgres"
            hosts = [{ host = "db", port = 5432 }]
            database = "app"
            password = "pw"
            tls = { mode = "require" }
            "#,
        )
        .unwrap();
        assert_eq!(c.tls.mode, SslMode::Require);
        assert_eq!(c.password.unwrap().expose(), "pw");
    }

    #[test]
    fn client_cert_needs_key() {
        let mut c = ConnectionConfig::sim("a");
        c.tls.client_cert = Some("/c.pem".into());
        assert_eq!(c.validate().unwrap_err().field, "connection.tls.client_key");
    }
}
