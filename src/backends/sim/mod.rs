//! The simulated backend: an in-process world of named database servers with fault
//! injection.
//!
//! [`SimBackend`] is a complete [`Backend`]: examples, tests and benchmarks run pools on it
//! without a database. Every server of the world is reached through a [`SimServer`] handle,
//! which injects faults (outages, killed connections, failing, panicking or stalling
//! operations, wrong passwords, random failures drawn from a seeded generator) and counts
//! what the pools did to it (open connections, connects, in-flight connects, queries).
//!
//! A config connects to the server named by its
//! [`primary_host()`](ConnectionConfig::primary_host), so `ConnectionConfig::sim("db1")`
//! reaches the server `"db1:1"`. Servers are created on first use with the world's default
//! [`SimBehavior`].
//!
//! Time is [`tokio::time`] time: latencies and scheduled outages follow a paused test clock.
//! Zero latencies never touch the timer, so the backend also works (and costs almost
//! nothing) outside a runtime.
//!
//! ```
//! use std::time::Duration;
//!
//! use poolwarden::backends::sim::{SimBackend, SimBehavior};
//! use poolwarden::BackendErrorKind;
//! use poolwarden::{Backend, ConnectionConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let sim = SimBackend::new(42);
//! let cfg = ConnectionConfig::sim("db1");
//! let server = sim.server(&cfg.primary_host());
//! server.set_behavior(SimBehavior {
//!     query_latency: Duration::from_millis(1),
//!     ..SimBehavior::default()
//! });
//!
//! let mut conn = sim.connect(&cfg).await.unwrap();
//! assert_eq!(conn.query("SELECT 1").await.unwrap(), 1);
//! assert_eq!(server.open_connections(), 1);
//!
//! // The server goes down: open connections are killed, new ones are refused.
//! server.go_down();
//! assert!(sim.is_broken(&mut conn));
//! assert_eq!(server.open_connections(), 0);
//! let err = sim.connect(&cfg).await.unwrap_err();
//! assert_eq!(err.kind(), BackendErrorKind::Connect);
//!
//! server.come_up();
//! server.fail_next_connects(1);
//! assert!(sim.connect(&cfg).await.is_err());
//! assert!(sim.connect(&cfg).await.is_ok());
//! assert_eq!(server.connect_attempts(), 4);
//! # });
//! ```

// behavior: how a server performs; world: `SimBackend`, the servers by name; server: one
// server (its faults, replication and counters in files of their own); connection:
// `SimConnection`; overrides: the per-connection config options; backend: the `Backend`
// impl that connects them.
mod backend;
mod behavior;
mod connection;
mod overrides;
mod server;
mod world;

#[cfg(test)]
mod tests;

pub use behavior::{SimBehavior, SimRole};
pub use connection::SimConnection;
pub use server::SimServer;
pub use world::SimBackend;

#[cfg(doc)]
use crate::backends::Backend;
#[cfg(doc)]
use crate::connection::ConnectionConfig;
