//! [`Settings`]: a supervisor's config and its named pools, read from a TOML file and
//! `POOLWARDEN_*` environment variables, validated once.

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use super::actor::Supervisor;
use super::config::SupervisorConfig;
use super::registry::Registration;
use crate::backends::Backend;
use crate::connection::ConnectionConfig;
use crate::error::ConfigError;
use crate::limits;
use crate::pool::config::PoolConfig;
use crate::secret::Secret;

/// The prefix of the environment variables [`Settings::from_env`] reads.
///
/// ```
/// // POOLWARDEN_SUPERVISOR__MAX_POOLS=64 sets `supervisor.max_pools`.
/// assert_eq!(poolwarden::ENV_PREFIX, "POOLWARDEN_");
/// ```
pub const ENV_PREFIX: &str = "POOLWARDEN_";

/// A supervisor's settings and the pools it knows by name: what the process-wide manager
/// ([`SupervisorHandle::install_global`](crate::SupervisorHandle::install_global)) and
/// [`SupervisorHandle::start_with_settings`](crate::SupervisorHandle::start_with_settings)
/// start from. Every field has a default (no named pools, [`SupervisorConfig::default`]).
///
/// The TOML shape, and the same as environment variables: the prefix `POOLWARDEN_`, then
/// the path with `__` between its parts (names are lower-cased: `POOLWARDEN_POOLS__ORDERS__URL`
/// names the pool `orders`). The environment wins over the file.
///
/// ```toml
/// [supervisor]                 # SupervisorConfig; POOLWARDEN_SUPERVISOR__MAX_POOLS=64
/// max_pools = 64
/// [supervisor.default_pool]    # PoolConfig; POOLWARDEN_SUPERVISOR__DEFAULT_POOL__MAX_SIZE=8
/// max_size = 8
///
/// [pools.orders]               # a named pool: `sup.lookup("orders")`
/// url = "postgres://app:secret@db1/orders"   # POOLWARDEN_POOLS__ORDERS__URL=…
/// [pools.orders.pool]          # its own PoolConfig (else the default pool's)
/// max_size = 16
///
/// [pools.cache]
/// connection = { backend = "redis", hosts = [{ host = "127.0.0.1", port = 6379 }] }
/// ```
///
/// Every bad value is an error naming its field as written (`pools.orders.pool.max_size`,
/// `supervisor.max_pools`); a password never appears in one.
///
/// ```
/// use poolwarden::Settings;
///
/// let s = Settings::from_toml_str(r#"
///     [supervisor]
///     max_pools = 64
///     [pools.orders]
///     url = "sim://db1/orders"
///     [pools.orders.pool]
///     max_size = 4
/// "#)?;
/// assert_eq!(s.supervisor.max_pools, 64);
/// assert_eq!(s.pools["orders"].pool.as_ref().unwrap().max_size, 4);
///
/// let e = Settings::from_toml_str("[pools.orders]\nurl = \"sim://db1/orders\"\npool = { max_size = 0 }")
///     .unwrap_err();
/// assert_eq!(e.field, "pools.orders.pool.max_size");
/// # Ok::<(), poolwarden::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSettings")]
pub struct Settings {
    /// The supervisor's config. Default [`SupervisorConfig::default`].
    pub supervisor: SupervisorConfig,
    /// Pools registered by name before first use; each is created on its first lookup.
    /// Names: not empty, no control characters. Default: none.
    pub pools: BTreeMap<String, NamedPool>,
}

/// [`Settings`] as read, before [`Settings::validate`] (which deserializing runs).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSettings {
    #[serde(deserialize_with = "limits::nested")]
    supervisor: SupervisorConfig,
    pools: BTreeMap<String, NamedPool>,
}

impl TryFrom<RawSettings> for Settings {
    type Error = ConfigError;
    fn try_from(raw: RawSettings) -> Result<Self, ConfigError> {
        let settings = Settings {
            supervisor: raw.supervisor,
            pools: raw.pools,
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// A pool in [`Settings`]: where it connects — a `url` or a `connection` table, exactly one —
/// and optionally its own [`PoolConfig`].
///
/// ```
/// use poolwarden::{NamedPool, Secret};
///
/// let orders = NamedPool {
///     url: Some(Secret::new("postgres://app:s3cret@db1/orders")),
///     ..NamedPool::default()
/// };
/// assert_eq!(orders.connection_config("orders")?.hosts[0].host, "db1");
/// assert_eq!(NamedPool::default().connection_config("x").unwrap_err().field, "pools.x.url");
/// # Ok::<(), poolwarden::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamedPool {
    /// A connection URL (see [`ConnectionConfig::parse`]); held as a [`Secret`] since it may
    /// carry a password.
    #[serde(skip_serializing)]
    pub url: Option<Secret>,
    /// The connection as a table, for what a URL cannot say.
    #[serde(deserialize_with = "limits::nested_option")]
    pub connection: Option<ConnectionConfig>,
    /// The pool's config; default: the supervisor's `default_pool`.
    #[serde(deserialize_with = "limits::nested_option")]
    pub pool: Option<PoolConfig>,
}

impl NamedPool {
    /// The pool's connection config, from `url` or `connection`; the error names the field
    /// under `pools.<name>`.
    pub fn connection_config(&self, name: &str) -> Result<ConnectionConfig, ConfigError> {
        let at = |field: &str| format!("pools.{name}.{field}");
        match (&self.url, &self.connection) {
            (Some(url), None) => ConnectionConfig::parse(url.expose())
                .map_err(|e| ConfigError::new(at("url"), format!("{}: {}", e.field, e.reason))),
            (None, Some(c)) => c
                .validate()
                .map(|()| c.clone())
                .map_err(|e| ConfigError::new(at(&e.field), e.reason)),
            (Some(_), Some(_)) => Err(ConfigError::new(
                at("url"),
                "and `connection` are both given; give one",
            )),
            (None, None) => Err(ConfigError::new(
                at("url"),
                "is missing: give `url` or `connection`",
            )),
        }
    }
}

impl Settings {
    /// Read a TOML document, then [`validate`](Self::validate).
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        Self::extract(Figment::from(Toml::string(toml)))
    }

    /// Read a TOML file, then [`validate`](Self::validate). A missing file is an error.
    ///
    /// ```
    /// let e = poolwarden::Settings::from_toml_file("/nonexistent/poolwarden.toml").unwrap_err();
    /// assert_eq!(e.field, "settings");
    /// ```
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(ConfigError::new(
                "settings",
                format!("file {} does not exist", path.display()),
            ));
        }
        Self::extract(Figment::from(Toml::file_exact(path)))
    }

    /// Read `POOLWARDEN_*` environment variables (see [`Settings`] for their names), then
    /// [`validate`](Self::validate). No variable set gives the defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::extract(Figment::from(env()))
    }

    /// A TOML file (when given) with `POOLWARDEN_*` environment variables over it, then
    /// [`validate`](Self::validate).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "settings",
                    format!("file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        Self::extract(figment.merge(env()))
    }

    /// Check every field; the error names the first bad one by its path in the TOML shape.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.supervisor.validate()?;
        for (name, pool) in &self.pools {
            limits::check_name("pools", name)
                .map_err(|e| ConfigError::new("pools", format!("has a name that {}", e.reason)))?;
            pool.connection_config(name)?;
            if let Some(p) = &pool.pool {
                p.validate()
                    .map_err(|e| ConfigError::new(format!("pools.{name}.{}", e.field), e.reason))?;
            }
        }
        Ok(())
    }

    fn extract(figment: Figment) -> Result<Self, ConfigError> {
        let raw: RawSettings = figment.extract().map_err(from_figment)?;
        Settings::try_from(raw)
    }
}

fn env() -> Env {
    Env::prefixed(ENV_PREFIX).split("__")
}

/// The first of figment's errors, named by its path; the value is left out of the reason
/// when the path names a password or URL.
fn from_figment(errors: figment::Error) -> ConfigError {
    let e = errors
        .into_iter()
        .next()
        .expect("an error holds at least one");
    let field = if e.path.is_empty() {
        "settings".to_string()
    } else {
        e.path.join(".")
    };
    let secret = e.path.iter().any(|p| p == "password" || p == "url");
    let reason = if secret {
        "has a value of the wrong type".to_string()
    } else {
        e.kind.to_string()
    };
    let from = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    ConfigError::new(field, format!("{reason}{from}"))
}

impl<B: Backend> Supervisor<B> {
    /// A supervisor with `settings`' config and its named pools registered (each created on
    /// its first lookup).
    pub(crate) fn from_settings(backend: B, settings: &Settings) -> Result<Self, ConfigError> {
        settings.validate()?;
        let mut supervisor = Supervisor::new(backend, settings.supervisor.clone())?;
        for (name, pool) in &settings.pools {
            let registration = Registration {
                connection: pool.connection_config(name)?,
                pool: pool.pool.clone(),
                credentials: None,
            };
            supervisor
                .registry_mut()
                .register(name.clone(), registration);
        }
        Ok(supervisor)
    }
}
