//! Settings of the supervisor.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::pool::config::PoolConfig;

/// Settings of a [`Supervisor`](crate::Supervisor). Every field has a default.
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
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// Config of pools created without one of their own. Default [`PoolConfig::default`].
    pub default_pool: PoolConfig,
    /// Most pools alive at once; at the cap the least recently used idle pool is evicted.
    /// Default 1024.
    pub max_pools: usize,
    /// A pool unused for this long is drained and stopped. Default 10 min; `None` never.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Option<Duration>,
    /// How often idle pools are looked for. Default 30s.
    #[serde(with = "humantime_serde")]
    pub reap_interval: Duration,
    /// Budget of one pool's probe in `HealthCheck`. Default 2s.
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
    /// Restarts of one pool actor tolerated within `restart_window`; one more marks the
    /// pool failed until a `Revive` (OTP's restart intensity). Default 5.
    pub max_restarts: u32,
    /// See `max_restarts`. Default 10s.
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
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
        }
    }
}

impl SupervisorConfig {
    /// Check the fields; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.default_pool.validate().map_err(|e| ConfigError {
            field: e.field.replacen("pool.", "supervisor.default_pool.", 1),
            ..e
        })?;
        if self.max_pools == 0 {
            return Err(ConfigError::new(
                "supervisor.max_pools",
                "must be at least 1",
            ));
        }
        if self.reap_interval.is_zero() {
            return Err(ConfigError::new(
                "supervisor.reap_interval",
                "must be greater than zero",
            ));
        }
        if self.health_timeout.is_zero() {
            return Err(ConfigError::new(
                "supervisor.health_timeout",
                "must be greater than zero",
            ));
        }
        if self.restart_window.is_zero() {
            return Err(ConfigError::new(
                "supervisor.restart_window",
                "must be greater than zero",
            ));
        }
        if self.pool_idle_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "supervisor.pool_idle_timeout",
                "must be greater than zero",
            ));
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
}
