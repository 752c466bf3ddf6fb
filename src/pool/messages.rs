//! Messages a pool actor answers.

use std::time::Duration;

use actix::Message;

use super::guard::PooledConnection;
use super::stats::PoolStats;
use crate::backends::Backend;
use crate::error::{Error, Phase};

/// Open connections until `target` are idle (capped at `max_size`); answers how many opened.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct Warm {
    /// Idle connections wanted.
    pub target: usize,
}

/// Change the pool's sizes at run time.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Resize {
    /// New `max_size`.
    pub max_size: u32,
    /// New `min_idle`.
    pub min_idle: u32,
}

/// The pool's figures.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "PoolStats")]
pub struct GetPoolStats;

/// The connections held past the pool's `leak_threshold` now: how long, and where they
/// were checked out (with `leak_backtrace`). Empty when leak detection is off. The same
/// as [`PoolHandle::leaks`](crate::PoolHandle::leaks).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<crate::observe::LeakReport>")]
pub struct GetLeaks;

/// Probe the endpoint once; `Err` carries the reason.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Probe {
    /// Budget for the probe.
    pub timeout: Duration,
}

/// Return a connection explicitly; `broken` closes it instead of keeping it. The same as
/// dropping the guard ([`PooledConnection::release`]) or
/// [`discard`](PooledConnection::discard), for actix code that hands connections around as
/// messages.
///
/// ```
/// use poolwarden::backends::sim::SimBackend;
/// use poolwarden::messages::Release;
/// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
///
/// # actix::System::new().block_on(async {
/// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
/// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
/// let conn = pool.acquire().await?;
/// let actor = pool.actor().expect("running");
/// actor.send(Release { conn, broken: true }).await?; // closed, its slot freed
/// assert_eq!(pool.stats().in_use, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release<B: Backend> {
    /// The connection.
    pub conn: PooledConnection<B>,
    /// Close it rather than reuse it.
    pub broken: bool,
}

/// Stop serving, close idle connections and stop the actor.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Close;

/// Backend code panicked: the actor stops and its supervisor restarts it.
#[doc(hidden)]
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Crashed {
    /// What was running.
    pub phase: Phase,
    /// The panic message.
    pub message: String,
}

/// Bring a pool that failed (too many restarts) back into service. Answers whether it
/// was failed.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "bool")]
pub struct Revive;
