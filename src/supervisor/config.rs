//! Settings of the supervisor.

use std::time::Duration;

use serde::Serialize;

use crate::error::ConfigError;
use crate::limits::{
    self, check_optional_duration, check_positive_duration, check_size, validated_config,
};
use crate::pool::config::PoolConfig;

validated_config! {
/// Settings of a [`Supervisor`](crate::Supervisor). Every field has a default.
///
/// Every duration is at most [`SupervisorConfig::MAX_DURATION`] (365 days); `max_pools` at
/// most [`SupervisorConfig::MAX_POOLS`]. [`validate`](Self::validate) checks them, and so does
/// deserialization, so a bad TOML value is an error naming the field.
///
/// ```
/// use poolwarden::SupervisorConfig;
/// let cfg: SupervisorConfig = toml::from_str(r#"
///     max_pools = 50
///     [default_pool]
///     max_size = 4
/// "#).unwrap();
/// assert_eq!(cfg.default_pool.max_size, 4);
/// cfg.validate().unwrap();
///
/// let e = toml::from_str::<SupervisorConfig>("[default_pool]\nmax_size = 0").unwrap_err();
/// assert!(e.to_string().contains("supervisor.default_pool.max_size"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupervisorConfig {
    /// Config of pools created without one of their own. Default [`PoolConfig::default`].
    #[serde(deserialize_with = "limits::nested")]
    pub default_pool: PoolConfig,
    /// Most pools alive at once; at the cap the least recently used idle pool is evicted.
    /// Default 1024; 1 to [`SupervisorConfig::MAX_POOLS`] (100 000).
    pub max_pools: usize,
    /// A pool unused for this long is drained and stopped. Default 10 min; `None` (`"off"`
    /// in TOML or an environment variable) never.
    #[serde(with = "crate::optional_duration")]
    pub pool_idle_timeout: Option<Duration>,
    /// How often idle pools are looked for. Default 30s; at least 1ms.
    #[serde(with = "humantime_serde")]
    pub reap_interval: Duration,
    /// Budget of one pool's probe in `HealthCheck`. Default 2s. A pool actor that does not
    /// answer within twice this is reported unhealthy; the 365-day maximum keeps that
    /// doubled wait representable.
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
    /// Restarts of one pool actor tolerated within `restart_window`; one more marks the
    /// pool failed until a `Revive` (OTP's restart intensity). Default 5.
    pub max_restarts: u32,
    /// See `max_restarts`. Default 10s.
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
    /// Most connections open at once to one endpoint (`host:port`, or a Unix socket
    /// directory and port), every pool of the supervisor together: regular, overflow,
    /// replica-set members, dedicated connections, and those opened for probes and
    /// credential verification, while they are open. A config with several hosts counts
    /// against its first; a SQLite config (no host) only against `max_total_connections`.
    /// A connect with no room waits like any acquire (its deadline, FIFO among the
    /// waiters of the endpoint) while idle connections of other pools on the endpoint are
    /// closed, least recently used first; refills to `min_idle` never wait, they skip.
    /// See "Connection budgets" in `docs/architecture.md`. Default `None`: no limit;
    /// else 1 to [`SupervisorConfig::MAX_CONNECTIONS`] (1 000 000).
    pub max_connections_per_host: Option<u32>,
    /// Most connections open at once across every endpoint, counted as for
    /// `max_connections_per_host` (waiting for room closes the least recently used idle
    /// connection of any pool). Default `None`: no limit; else 1 to
    /// [`SupervisorConfig::MAX_CONNECTIONS`].
    pub max_total_connections: Option<u32>,
}
fields: SupervisorConfigFields, #[serde(default, deny_unknown_fields)], default;
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            default_pool: PoolConfig::default(),
            max_pools: 1024,
            pool_idle_timeout: Some(Duration::from_secs(600)),
            reap_interval: Duration::from_secs(30),
            health_timeout: Duration::from_secs(2),
            max_restarts: 5,
            restart_window: Duration::from_secs(10),
            max_connections_per_host: None,
            max_total_connections: None,
        }
    }
}

impl SupervisorConfig {
    /// Longest any duration setting may be: 365 days.
    pub const MAX_DURATION: Duration = limits::MAX_DURATION;
    /// Largest `max_pools`.
    pub const MAX_POOLS: usize = limits::MAX_POOLS;
    /// Largest `max_connections_per_host` and `max_total_connections`.
    pub const MAX_CONNECTIONS: u32 = limits::MAX_BUDGET;

    /// Check the fields; the error names the first bad one. Deserialization runs this too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.default_pool
            .validate()
            .map_err(|e| limits::nest(e, "pool.", "supervisor.default_pool."))?;
        check_size("supervisor.max_pools", self.max_pools, 1, Self::MAX_POOLS)?;
        check_optional_duration("supervisor.pool_idle_timeout", self.pool_idle_timeout)?;
        crate::limits::check_interval("supervisor.reap_interval", self.reap_interval)?;
        check_positive_duration("supervisor.health_timeout", self.health_timeout)?;
        check_positive_duration("supervisor.restart_window", self.restart_window)?;
        for (field, value) in [
            (
                "supervisor.max_connections_per_host",
                self.max_connections_per_host,
            ),
            (
                "supervisor.max_total_connections",
                self.max_total_connections,
            ),
        ] {
            if let Some(n) = value {
                check_size(field, n, 1, Self::MAX_CONNECTIONS)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_errors_carry_the_full_path() {
        let mut c = SupervisorConfig::default();
        c.default_pool.max_size = 0;
        assert_eq!(
            c.validate().unwrap_err().field,
            "supervisor.default_pool.max_size"
        );
        let c = SupervisorConfig {
            max_pools: 0,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "supervisor.max_pools");
    }

    #[test]
    fn budgets_are_checked_naming_the_field() {
        for (per_host, total, field) in [
            (Some(0), None, "supervisor.max_connections_per_host"),
            (
                Some(SupervisorConfig::MAX_CONNECTIONS + 1),
                None,
                "supervisor.max_connections_per_host",
            ),
            (None, Some(0), "supervisor.max_total_connections"),
        ] {
            let c = SupervisorConfig {
                max_connections_per_host: per_host,
                max_total_connections: total,
                ..Default::default()
            };
            assert_eq!(c.validate().unwrap_err().field, field);
        }
        let c: SupervisorConfig =
            toml::from_str("max_connections_per_host = 4\nmax_total_connections = 10").unwrap();
        assert_eq!(
            (c.max_connections_per_host, c.max_total_connections),
            (Some(4), Some(10))
        );
        let e = toml::from_str::<SupervisorConfig>("max_total_connections = 0").unwrap_err();
        assert!(
            e.to_string().contains("supervisor.max_total_connections"),
            "{e}"
        );
    }
}
