//! A PostgreSQL pool for tests, the same for every suite that talks to a real server
//! (`tests/postgres`, `tests/pgbouncer`): no warm-up, no idle timeout, no lifetime, a
//! supervisor that never reaps it.

use std::time::Duration;

use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::{ConnectionConfig, PoolConfig, PoolHandle, SupervisorConfig, SupervisorHandle};

use super::secs;

/// Test pools: `max_size`, no warm-up, a 10 s acquire and 5 s connect budget, nothing
/// closed for age or idleness.
pub fn pool_config(max_size: u32) -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size,
        acquire_timeout: secs(10),
        connect_timeout: secs(5),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        ..PoolConfig::default()
    }
}

/// A supervisor (on the current actix System) that never reaps, and a pool of
/// `connection` with `config` in it.
pub async fn start_pool(
    connection: ConnectionConfig,
    config: PoolConfig,
) -> (
    SupervisorHandle<PostgresBackend>,
    PoolHandle<PostgresBackend>,
) {
    let sup = SupervisorHandle::start(
        PostgresBackend::new(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .expect("valid supervisor config");
    let pool = sup
        .pool_with(connection, config)
        .await
        .expect("pool created");
    (sup, pool)
}
