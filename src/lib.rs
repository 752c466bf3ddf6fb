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

pub mod actors;
mod backend;
pub mod backends;
mod backoff;
pub mod breaker;
mod config;
mod error;
mod handle;
mod key;
pub mod leak;
pub mod lru;
pub mod messages;
mod pool;
mod replica_set;
pub mod router;
mod secret;
mod stats;

pub use actors::pool::PoolActor;
pub use actors::replica_set::ReplicaSetActor;
pub use actors::supervisor::Supervisor;
pub use backend::{Backend, MemberStatus};
pub use backoff::Backoff;
pub use breaker::{BreakerConfig, BreakerState};
pub use config::connection::{ConnectionConfig, Host, SslMode, TlsConfig};
pub use config::pool::{PoolConfig, Profile};
pub use config::replica_set::ReplicaSetConfig;
pub use config::supervisor::SupervisorConfig;
pub use error::{BackendError, BackendErrorKind, ConfigError, Error, Phase, Result};
pub use handle::{EmbeddedSupervisor, SupervisorHandle};
pub use key::PoolKey;
pub use pool::guard::PooledConnection;
pub use pool::handle::PoolHandle;
pub use replica_set::{CausalityToken, MemberInfo, ReadOptions, ReplicaSetHandle};
pub use router::{Role, Strategy};
pub use secret::Secret;
pub use stats::{HealthReport, HealthStatus, PoolStats, ShutdownReport, SupervisorStats};
