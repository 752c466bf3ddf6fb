//! Where and how to connect: plain data, parsed from URLs or deserialized from TOML.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
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
            other => {
                return Err(ConfigError::new(
                    "connection.tls.mode",
                    format!("`{other}` is not one of disable, prefer, require, verify-full"),
                ))
            }
        })
    }
}

/// TLS settings of a connection.
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Host {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
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

/// Everything needed to open a connection to one endpoint.
///
/// `Debug` and `Display` redact the password; [`PoolKey`](crate::PoolKey) never covers it.
///
/// ```
/// use poolwarden::ConnectionConfig;
/// let cfg = ConnectionConfig::parse("postgres://app:s3cret@db1:5433/orders?application_name=api")?;
/// assert_eq!(cfg.backend, "postgres");
/// assert_eq!(cfg.hosts[0].port, 5433);
/// assert_eq!(cfg.application_name.as_deref(), Some("api"));
/// assert!(!format!("{cfg:?} {cfg}").contains("s3cret"));
/// # Ok::<(), poolwarden::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Backend kind: `postgres`, `redis`, `mysql`, `sim`, or a custom adapter's name.
    pub backend: String,
    /// One or more server addresses (several for multi-host connection strings).
    pub hosts: Vec<Host>,
    /// Database name (PostgreSQL, MySQL) or number (Redis). Default: none.
    #[serde(default)]
    pub database: Option<String>,
    /// User name. Default: none.
    #[serde(default)]
    pub user: Option<String>,
    /// Password. Never printed, never serialized, never part of a pool key.
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
    /// TLS settings. Default: `prefer`, system roots, no client certificate.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Application name reported to the server. Default: none.
    #[serde(default)]
    pub application_name: Option<String>,
    /// Backend-specific options (`statement_timeout`, `connect_timeout`, simulator knobs…).
    /// Every option is part of the pool key. Default: empty.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
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
    /// `mariadb://` or `sim://` URL.
    ///
    /// Query parameters: `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `application_name`;
    /// any other becomes an entry of [`options`](Self::options). Several hosts may be given
    /// as `host1:5432,host2:5433`.
    pub fn parse(input: &str) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError::new("connection.url", reason);
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| err("is not a URL: expected `scheme://host/...`".into()))?;
        let (backend, tls_by_scheme) = match scheme {
            "postgres" | "postgresql" => ("postgres", None),
            "redis" => ("redis", None),
            "rediss" => ("redis", Some(SslMode::VerifyFull)),
            "mysql" | "mariadb" => ("mysql", None),
            "sim" => ("sim", None),
            other => return Err(err(format!("has unsupported scheme `{other}`"))),
        };
        let port_default = default_port(backend);

        // Multi-host authorities (`h1:1,h2:2`) are not valid for `url`: split them off first.
        let (authority, path_and_query) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        // Parse everything but the host list through `url`, for percent-decoding.
        let probe = format!(
            "{scheme}://{}placeholder{path_and_query}",
            userinfo.map(|u| format!("{u}@")).unwrap_or_default()
        );
        let parsed = url::Url::parse(&probe).map_err(|e| err(format!("is malformed ({e})")))?;

        let decode = |s: &str| -> Result<String, ConfigError> {
            percent_decode(s).ok_or_else(|| err("contains invalid percent-encoding".into()))
        };
        let user = match parsed.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = parsed.password().map(decode).transpose()?.map(Secret::new);

        let mut hosts = Vec::new();
        for part in hostlist.split(',') {
            if part.is_empty() {
                return Err(err("has an empty host".into()));
            }
            let (host, port) = split_host_port(part).map_err(err)?;
            let port = match (port, port_default) {
                (Some(p), _) => p,
                (None, Some(p)) => p,
                (None, None) => return Err(err(format!("host `{host}` needs a port"))),
            };
            hosts.push(Host { host, port });
        }

        let path = parsed.path().trim_start_matches('/');
        let database = if path.is_empty() {
            None
        } else {
            Some(decode(path)?)
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
        for (k, v) in parsed.query_pairs() {
            let v = v.into_owned();
            match &*k {
                "sslmode" | "ssl_mode" => cfg.tls.mode = SslMode::parse(&v)?,
                "sslrootcert" | "ssl_ca" => cfg.tls.ca_file = Some(v.into()),
                "sslcert" | "ssl_cert" => cfg.tls.client_cert = Some(v.into()),
                "sslkey" | "ssl_key" => cfg.tls.client_key = Some(v.into()),
                "application_name" => cfg.application_name = Some(v),
                "password" => cfg.password = Some(Secret::new(v)),
                "user" => cfg.user = Some(v),
                "dbname" => cfg.database = Some(v),
                _ => {
                    cfg.options.insert(k.into_owned(), v);
                }
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check the fields; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backend.is_empty() {
            return Err(ConfigError::new("connection.backend", "must not be empty"));
        }
        if self.hosts.is_empty() {
            return Err(ConfigError::new(
                "connection.hosts",
                "must name at least one host",
            ));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if h.host.is_empty() {
                return Err(ConfigError::new(
                    format!("connection.hosts[{i}].host"),
                    "must not be empty",
                ));
            }
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err(ConfigError::new(
                "connection.tls.client_key",
                "client_cert and client_key must be given together",
            ));
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

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn split_host_port(part: &str) -> Result<(String, Option<u16>), String> {
    // Quote the port only when it is digits: a password holding an unescaped `/` or `?`
    // would otherwise be cut into the host list and echoed here.
    let bad_port = |p: &str| match p.bytes().all(|b| b.is_ascii_digit()) {
        true => format!("has an invalid port `{p}`"),
        false => "has an invalid port (not a number)".to_string(),
    };
    if let Some(rest) = part.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "has an unterminated IPv6 address".to_string())?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| bad_port(p))?),
            None if after.is_empty() => None,
            None => return Err(format!("has garbage after IPv6 address: `{after}`")),
        };
        return Ok((host.to_string(), port));
    }
    match part.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p.parse().map_err(|_| bad_port(p))?;
            if port == 0 {
                return Err(bad_port(p));
            }
            Ok((h.to_string(), Some(port)))
        }
        None => Ok((part.to_string(), None)),
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
            .finish()
    }
}

/// A URL with the password replaced by `***`.
impl fmt::Display for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.backend)?;
        if let Some(u) = &self.user {
            write!(f, "{u}")?;
            if self.password.is_some() {
                write!(f, ":***")?;
            }
            write!(f, "@")?;
        }
        let hosts: Vec<String> = self.hosts.iter().map(Host::to_string).collect();
        write!(
            f,
            "{}/{}",
            hosts.join(","),
            self.database.as_deref().unwrap_or("")
        )
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
