//! A replica set: one primary and read replicas under one name.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::connection::ConnectionConfig;
use crate::error::ConfigError;
use crate::pool::config::PoolConfig;
use crate::replica_set::router::Strategy;

fn yes() -> bool {
    true
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

/// Settings of a replica set.
///
/// ```
/// use poolwarden::{ReplicaSetConfig, Strategy};
/// let cfg: ReplicaSetConfig = toml::from_str(r#"
///     name = "orders"
///     strategy = "least_loaded"
///     max_lag = "5s"
///     primary = { backend = "sim", hosts = [{ host = "db1", port = 1 }] }
///     replicas = [{ backend = "sim", hosts = [{ host = "db2", port = 1 }] }]
/// "#).unwrap();
/// assert_eq!(cfg.strategy, Strategy::LeastLoaded);
/// assert!(cfg.fallback_to_primary);
/// cfg.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaSetConfig {
    /// The set's name.
    pub name: String,
    /// The member that takes writes at start (failover may change it).
    pub primary: ConnectionConfig,
    /// Read replicas. Default none.
    #[serde(default)]
    pub replicas: Vec<ConnectionConfig>,
    /// How reads are spread. Default round-robin.
    #[serde(default)]
    pub strategy: Strategy,
    /// Replicas lagging more than this are skipped for reads. Default: no limit.
    #[serde(default, with = "humantime_serde")]
    pub max_lag: Option<Duration>,
    /// With no usable replica, reads go to the primary. Default true.
    #[serde(default = "yes")]
    pub fallback_to_primary: bool,
    /// How often each member's role, lag and position are read. Default 1s.
    #[serde(default = "one_second", with = "humantime_serde")]
    pub topology_interval: Duration,
    /// Settings of every member's pool; `None` uses the supervisor's default.
    #[serde(default)]
    pub pool: Option<PoolConfig>,
}

impl ReplicaSetConfig {
    /// A set with `primary` and `replicas` and every other setting at its default.
    pub fn new(
        name: impl Into<String>,
        primary: ConnectionConfig,
        replicas: Vec<ConnectionConfig>,
    ) -> Self {
        Self {
            name: name.into(),
            primary,
            replicas,
            strategy: Strategy::default(),
            max_lag: None,
            fallback_to_primary: true,
            topology_interval: one_second(),
            pool: None,
        }
    }

    /// Check the fields; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("replica_set.name", "must not be empty"));
        }
        let prefix = |e: ConfigError, at: &str| ConfigError {
            field: e
                .field
                .replacen("connection.", &format!("replica_set.{at}."), 1),
            ..e
        };
        self.primary.validate().map_err(|e| prefix(e, "primary"))?;
        for (i, r) in self.replicas.iter().enumerate() {
            r.validate()
                .map_err(|e| prefix(e, &format!("replicas[{i}]")))?;
        }
        if self.topology_interval.is_zero() {
            return Err(ConfigError::new(
                "replica_set.topology_interval",
                "must be greater than zero",
            ));
        }
        if let Some(p) = &self.pool {
            p.validate().map_err(|e| ConfigError {
                field: e.field.replacen("pool.", "replica_set.pool.", 1),
                ..e
            })?;
        }
        Ok(())
    }
}
