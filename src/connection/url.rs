//! URLs: [`ConnectionConfig::parse`] (strict: what could mean two things is refused, never
//! guessed) and writing a config back out (redacted for Display, with the password for
//! [`ConnectionConfig::to_url_with_password`]).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::Ipv6Addr;

use super::{default_port, ConnectionConfig, Host, SslMode, TlsConfig};
use crate::error::ConfigError;
use crate::secret::Secret;

/// What `write_url` does with the password.
#[derive(Clone, Copy, PartialEq)]
enum Password {
    Redacted,
    Exposed,
}

impl ConnectionConfig {
    /// The URL without the password (`:***` stands for it) and without the query: what
    /// Display shows.
    pub(super) fn write_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_url(f, Password::Redacted, false)
    }

    /// Parse a `postgres://`, `postgresql://`, `redis://`, `rediss://`, `mysql://`,
    /// `mariadb://`, `sim://` or `sqlite:` URL. Input that could mean two things is refused
    /// rather than guessed at.
    ///
    /// # URL syntax
    ///
    /// `scheme://[user[:password]@]host[:port][,host[:port]…][/database][?key=value&…]`, read
    /// strictly, so that nothing is guessed:
    ///
    /// - The host list ends at the first `/` or `?`. A raw `@` may appear once, and only there:
    ///   as the separator of the user info. A `/`, `?`, `#` or `@` in a user name, password or
    ///   database name must be percent-encoded (`%2F`, `%3F`, `%23`, `%40`); otherwise the URL
    ///   is refused, because it cannot be told apart from a different host list or database.
    /// - `#` (a fragment) is refused anywhere, as are control characters, raw or
    ///   percent-encoded. Other characters stand for themselves.
    /// - The user info splits at its first `:`; user, password, host names, database, query
    ///   names and values are percent-decoded (RFC 3986: `+` is not a space, so a raw `+` in the
    ///   query is refused as ambiguous; write `%2B` or `%20`). Decoded text must be UTF-8 and
    ///   hold no control character.
    /// - An IPv6 address must be in brackets: `[::1]` or `[::1]:5432`. Ports are decimal digits,
    ///   1 to 65535. An empty host (`a,,b`), an empty port (`h:`) or `:` in an unbracketed host is
    ///   refused. An entry of the host list that cannot be read is a `connection.url` error; a
    ///   value that is read but refused names its field (`connection.hosts[1].port` for port 0).
    /// - One `?` starts the query; another raw `?` is refused. Each query parameter is
    ///   `key=value`, given once (aliases included); `password`, `user`
    ///   and `dbname` may not repeat what the user info or path already says.
    ///
    /// Errors name the field (`connection.url`, `connection.hosts[1].port`,
    /// `connection.password`…) and quote nothing from the input, so a mistyped URL cannot carry
    /// its password into a log.
    ///
    /// Query parameters: `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `application_name`,
    /// `password`, `user`, `dbname`; any other becomes an entry of [`options`](Self::options).
    /// Several hosts may be given as `host1:5432,host2:5433`. The result is validated
    /// ([`validate`](Self::validate)).
    ///
    /// # SQLite
    ///
    /// A SQLite URL names a file, not a host; it sets [`path`](Self::path) and leaves
    /// `hosts` empty: `sqlite:///abs/path.db` (absolute), `sqlite://relative.db` or
    /// `sqlite:relative.db` (relative to the current directory), `sqlite::memory:` (an
    /// in-memory database), each optionally followed by `?key=value&…` options (`mode`,
    /// `busy_timeout`, `journal_mode`, `foreign_keys`; see [`path`](Self::path)). The path is
    /// percent-decoded. What reads as a host is refused: user info (`sqlite://u@…`), a
    /// `host:port` first segment, `localhost`, `[v6]`; so is a raw `@` anywhere after
    /// `sqlite://` (write `%40`).
    ///
    /// ```
    /// use poolwarden::ConnectionConfig;
    /// let c = ConnectionConfig::parse("sqlite:///var/lib/app/app.db?busy_timeout=2s")?;
    /// assert_eq!(c.path.as_deref(), Some(std::path::Path::new("/var/lib/app/app.db")));
    /// assert!(c.hosts.is_empty());
    /// assert_eq!(c.to_string(), "sqlite:///var/lib/app/app.db");
    /// let field = |url| ConnectionConfig::parse(url).unwrap_err().field;
    /// assert_eq!(field("sqlite://db:5432/app.db"), "connection.hosts[0].port");
    /// assert_eq!(field("sqlite://app.db?colour=blue"), "connection.options");
    /// # Ok::<(), poolwarden::ConfigError>(())
    /// ```
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
        if let Some(rest) = input.strip_prefix("sqlite:") {
            return Self::parse_sqlite(rest);
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
                    "has an unsupported scheme (expected postgres, postgresql, redis, rediss, mysql, mariadb, sim or sqlite)",
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
            path: None,
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
        if self.backend == "sqlite" {
            return self.write_sqlite_url(f, query);
        }
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
pub(super) fn percent_decode(s: &str) -> Option<String> {
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
pub(super) fn percent_encode(s: &str, keep: &[u8]) -> String {
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
