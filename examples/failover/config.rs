//! The demo's pool, replica-set and supervisor settings.

use std::time::Duration;

use poolwarden::{BreakerConfig, ConnectionConfig, PoolConfig, ReplicaSetConfig, SupervisorConfig};

use crate::args::Args;
use crate::TOPOLOGY_INTERVAL;

/// Member pools of the demo: small, quick to give up on a dead server, quick to heal.
pub fn pool_config() -> PoolConfig {
    PoolConfig {
        min_idle: 2,
        max_size: 8,
        // Long enough for a write to ride out a failover of a second or so.
        acquire_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        probe_timeout: Duration::from_millis(250),
        probe_interval: Some(Duration::from_secs(1)),
        breaker: BreakerConfig {
            failure_threshold: 3,
            success_threshold: 2,
            open_for: Duration::from_millis(250),
            grow_after: std::time::Duration::ZERO,
            max_open_for: Duration::from_secs(1),
        },
        ..PoolConfig::default()
    }
}

pub fn set_config(
    args: &Args,
    primary: ConnectionConfig,
    replicas: Vec<ConnectionConfig>,
) -> ReplicaSetConfig {
    let mut config = ReplicaSetConfig::new("orders", primary, replicas);
    config.strategy = args.strategy;
    config.max_lag = Some(Duration::from_millis(500));
    config.topology_interval = TOPOLOGY_INTERVAL;
    config.pool = Some(pool_config());
    config
}

pub fn supervisor_config() -> SupervisorConfig {
    SupervisorConfig {
        default_pool: pool_config(),
        ..SupervisorConfig::default()
    }
}
