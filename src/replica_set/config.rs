//! A replica set: one primary and read replicas under one name.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::connection::ConnectionConfig;
use crate::error::ConfigError;
use crate::key::PoolKey;
use crate::limits::{self, validated_config};
use crate::pool::config::PoolConfig;
use crate::replica_set::router::Strategy;

fn yes() -> bool {
    true
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

validated_config! {
/// Settings of a replica set.
///
/// Every duration is at most [`ReplicaSetConfig::MAX_DURATION`] (365 days); at most
/// [`ReplicaSetConfig::MAX_REPLICAS`] replicas. [`validate`](Self::validate) checks every
/// member and the pool settings too, and deserialization runs it, so a bad TOML value is an
/// error naming the field (`replica_set.replicas[0].hosts[0].port`…).
///
/// ```
/// use poolwarden::{ReplicaSetConfig, Strategy};
/// let cfg: ReplicaSetConfig = toml::from_str(r#"
///     name = "orders"
///     strategy = "least_loaded"
///     max_lag = "5s"
///     slow_start_window = "30s"
///     primary = { backend = "sim", hosts = [{ host = "db1", port = 1 }] }
///     replicas = [{ backend = "sim", hosts = [{ host = "db2", port = 1 }] }]
/// "#).unwrap();
/// assert_eq!(cfg.strategy, Strategy::LeastLoaded);
/// assert_eq!(cfg.slow_start_window, std::time::Duration::from_secs(30));
/// assert!(cfg.fallback_to_primary);
/// cfg.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaSetConfig {
    /// The set's name: not empty, no control characters.
    pub name: String,
    /// The member that takes writes at start (failover may change it).
    #[serde(deserialize_with = "limits::nested")]
    pub primary: ConnectionConfig,
    /// Read replicas. Default none; at most [`ReplicaSetConfig::MAX_REPLICAS`] (1000), each
    /// a member of its own: the primary or a replica listed again (the same server,
    /// database and user) is an error naming it.
    #[serde(default, deserialize_with = "limits::nested_vec")]
    pub replicas: Vec<ConnectionConfig>,
    /// How reads are spread. Default [`Strategy::PowerOfTwo`] (round-robin before: set
    /// `strategy = "round_robin"` to keep it).
    #[serde(default)]
    pub strategy: Strategy,
    /// Replicas lagging more than this are skipped for reads. Default: no limit (`None`,
    /// `"off"` in TOML).
    #[serde(default, with = "crate::optional_duration")]
    pub max_lag: Option<Duration>,
    /// Slow start: a replica readmitted after it was left out of routing (unreachable at a
    /// topology probe, its breaker open, its health bad) or added at run time takes a share
    /// of reads that grows linearly from a tenth of its due to all of it over this window
    /// (Envoy's `slow_start_window`), so a server with cold caches is not handed its full
    /// share at once. Under every strategy it takes part in each read with that chance, and
    /// never at the cost of a read going to the primary or failing: when only warming
    /// replicas qualify, they serve. Default zero: no slow start (power of two choices, the
    /// default strategy, already holds a returning replica to the load of the others); at
    /// most 365 days.
    ///
    /// ```
    /// use std::time::Duration;
    /// use poolwarden::{ConnectionConfig, ReplicaSetConfig};
    /// let mut cfg = ReplicaSetConfig::new("orders", ConnectionConfig::sim("db1"), vec![]);
    /// assert_eq!(cfg.slow_start_window, Duration::ZERO);
    /// cfg.slow_start_window = Duration::from_secs(30);
    /// cfg.validate().unwrap();
    /// cfg.slow_start_window = Duration::MAX;
    /// assert_eq!(cfg.validate().unwrap_err().field, "replica_set.slow_start_window");
    /// ```
    #[serde(default, with = "humantime_serde")]
    pub slow_start_window: Duration,
    /// With no usable replica, reads go to the primary. Default true.
    #[serde(default = "yes")]
    pub fallback_to_primary: bool,
    /// How often each member's role, lag and position are read. Default 1s; at least 1ms.
    #[serde(default = "one_second", with = "humantime_serde")]
    pub topology_interval: Duration,
    /// Settings of every member's pool; `None` uses the supervisor's default.
    #[serde(default, deserialize_with = "limits::nested_option")]
    pub pool: Option<PoolConfig>,
}
fields: ReplicaSetConfigFields, #[serde(deny_unknown_fields)];
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
            slow_start_window: Duration::ZERO,
            fallback_to_primary: true,
            topology_interval: one_second(),
            pool: None,
        }
    }

    /// Longest any duration setting may be: 365 days.
    pub const MAX_DURATION: Duration = limits::MAX_DURATION;
    /// Most replicas in one set.
    pub const MAX_REPLICAS: usize = limits::MAX_REPLICAS;

    /// Check the fields; the error names the first bad one. Deserialization runs this too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        limits::check_name("replica_set.name", &self.name)?;
        self.primary
            .validate()
            .map_err(|e| limits::nest(e, "connection.", "replica_set.primary."))?;
        if self.replicas.len() > Self::MAX_REPLICAS {
            return Err(ConfigError::new(
                "replica_set.replicas",
                format!("must hold at most {} replicas", Self::MAX_REPLICAS),
            ));
        }
        for (i, r) in self.replicas.iter().enumerate() {
            r.validate().map_err(|e| {
                limits::nest(e, "connection.", &format!("replica_set.replicas[{i}]."))
            })?;
        }
        self.check_distinct()?;
        if let Some(d) = self.max_lag {
            limits::check_duration("replica_set.max_lag", d)?;
        }
        limits::check_duration("replica_set.slow_start_window", self.slow_start_window)?;
        limits::check_interval("replica_set.topology_interval", self.topology_interval)?;
        if let Some(p) = &self.pool {
            p.validate()
                .map_err(|e| limits::nest(e, "pool.", "replica_set.pool."))?;
        }
        Ok(())
    }

    /// Every member a different pool: a replica that is the primary again, or another
    /// replica again (the same server, database and user: what a pool key covers, so a
    /// different password does not make it another member), would be served by one pool
    /// and make the set something other than it says.
    fn check_distinct(&self) -> Result<(), ConfigError> {
        // Where each key was first seen: `None` for the primary, else the replica's index.
        let mut seen = HashMap::with_capacity(self.replicas.len() + 1);
        seen.insert(PoolKey::of(&self.primary), None);
        for (i, r) in self.replicas.iter().enumerate() {
            if let Some(first) = seen.insert(PoolKey::of(r), Some(i)) {
                let other = match first {
                    None => "replica_set.primary".to_string(),
                    Some(j) => format!("replica_set.replicas[{j}]"),
                };
                return Err(ConfigError::new(
                    format!("replica_set.replicas[{i}]"),
                    format!("is {other} again (the same server, database and user)"),
                ));
            }
        }
        Ok(())
    }
}
