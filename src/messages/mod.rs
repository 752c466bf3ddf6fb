//! The protocol: every message the supervisor and the pool actors answer.

pub mod pool;
pub mod supervisor;

pub use pool::{Close, GetPoolStats, Probe, Release, Resize, Warm};
pub use supervisor::{
    Acquire, GetPool, GetStats, HealthCheck, Lookup, PoolRef, ReapIdle, Register, Shutdown,
};
