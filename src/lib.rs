//! # poolwarden
//!
//! Supervised database connection pools for actix applications and long-running tokio
//! workers.
//!
//! A [`Supervisor`] actor owns one [`PoolActor`] per [`PoolKey`] (a SHA-256 of the
//! connection config, never the password). Pool actors run under actix supervision:
//! a panic in backend code stops the actor and the supervisor restarts it, closing every
//! connection of the crashed incarnation as it comes back.
//!
//! Acquiring does not pass through any actor: resolve a [`PoolHandle`] once, then
//! [`acquire`](PoolHandle::acquire) runs in your task against the pool's shared state.
//! Lifecycle work (warm-up, maintenance, probes, resizing, restarts) is done by the pool
//! actor, in messages.
//!
//! ```
//! use poolwarden::backends::sim::SimBackend;
//! use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
//!
//! # actix::System::new().block_on(async {
//! let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
//! let pool = sup.pool(ConnectionConfig::parse("sim://primary/app")?).await?;
//! let mut conn = pool.acquire().await?;
//! conn.query("SELECT 1").await?;
//! drop(conn); // back to the pool
//! assert_eq!(pool.stats().served, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backends;
mod budget;
mod connection;
#[cfg(feature = "dashboard")]
pub mod dashboard;
mod error;
mod key;
mod limits;
pub mod messages;
mod observe;
mod optional_duration;
mod policy;
mod pool;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod replica_set;
mod secret;
mod supervisor;
mod timetable;

pub use backends::{Backend, MemberStatus, Role};
pub use budget::{BudgetStats, EndpointBudget, TotalBudget};
pub use connection::{ConnectionConfig, Host, SslMode, TlsConfig};
pub use error::{BackendError, BackendErrorKind, ConfigError, Error, Phase, Result};
pub use key::PoolKey;
pub use observe::names as metric_names;
pub use observe::{CloseCounts, CloseReason, LeakReport, Percentiles};
pub use policy::breaker::{BreakerConfig, BreakerState};
pub use pool::actor::PoolActor;
pub use pool::config::{PoolConfig, Profile};
pub use pool::credential::{CredentialsFuture, CredentialsProvider};
pub use pool::dedicated::DedicatedConnection;
pub use pool::guard::PooledConnection;
pub use pool::handle::PoolHandle;
pub use pool::hooks::{AcquireVerdict, HookError, HookFuture, HookPoint, Hooks};
pub use pool::stats::PoolStats;
pub use replica_set::actor::ReplicaSetActor;
pub use replica_set::config::ReplicaSetConfig;
pub use replica_set::handle::{CausalityToken, ReadOptions, ReplicaSetHandle};
pub use replica_set::members::MemberInfo;
pub use replica_set::router::Strategy;
pub use secret::Secret;
pub use supervisor::actor::Supervisor;
pub use supervisor::config::SupervisorConfig;
pub use supervisor::embedded::EmbeddedSupervisor;
pub use supervisor::handle::SupervisorHandle;
pub use supervisor::inventory::PoolListing;
pub use supervisor::settings::{NamedPool, Settings, ENV_PREFIX};
pub use supervisor::stats::{HealthReport, HealthStatus, ShutdownReport, SupervisorStats};
