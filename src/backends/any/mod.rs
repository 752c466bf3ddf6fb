//! One backend for every kind of database this build serves: [`AnyBackend`] opens
//! `postgres://`, `redis://` / `rediss://`, `mysql://` / `mariadb://`, `sqlite:` and `sim://`
//! connections by the config's scheme, and hands out an [`AnyConnection`] that gives typed
//! access to the driver underneath. So one supervisor — the process-wide one included —
//! holds pools of several kinds of database: one `GetStats`, one `HealthCheck`, one place
//! to shut them down.
//!
//! ```
//! use poolwarden::backends::any::AnyBackend;
//! use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
//!
//! # actix::System::new().block_on(async {
//! let sup = SupervisorHandle::start(AnyBackend::default(), SupervisorConfig::default())?;
//! // `postgres://…`, `redis://…`, `mysql://…` or `sqlite:…` the same way.
//! let pool = sup.pool(ConnectionConfig::parse("sim://primary/app")?).await?;
//! let mut conn = pool.acquire().await?;
//! conn.as_sim().expect("a sim:// pool").query("SELECT 1").await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! A scheme whose feature is not enabled is refused with a configuration error that names
//! the feature (`enable the poolwarden feature "mysql"`), never a guess.

mod backend;
mod connection;

pub use backend::AnyBackend;
pub use connection::AnyConnection;
