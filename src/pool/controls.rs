//! Controls an operator applies to a running pool: soft eviction (every connection
//! replaced, idle ones now, checked-out ones as they come back) and pausing acquires
//! (`pause.rs` holds the gate they queue at).

use tokio::time::Instant;

use super::shared::PoolShared;
use crate::backends::Backend;
use crate::error::Error;
use crate::observe::reason::CloseReason;

impl<B: Backend> PoolShared<B> {
    /// Close every idle connection now and every checked-out one when it comes back,
    /// by moving to a new generation (as a restart does, without counting one); dedicated
    /// connections are told through their `closed()`. Answers how many were closed now.
    pub(crate) fn soft_evict(&self) -> usize {
        let generation = self.incarnation.next();
        let closed = self.drain_idle(CloseReason::StaleGeneration);
        // Dedicated connections watch the state notification for a new generation.
        self.hot.wake_waiters();
        tracing::info!(pool = %self.key, generation, idle_closed = closed, "soft eviction: connections are replaced");
        closed
    }

    /// Stop handing out connections (and opening any for callers or refills) until
    /// [`resume`](Self::resume). Answers whether this call paused it.
    pub(crate) fn pause(&self) -> bool {
        let paused = self.pause.pause();
        if paused {
            tracing::info!(pool = %self.key, "pool paused");
        }
        paused
    }

    /// Let the acquires queued by [`pause`](Self::pause) through, in the order they came.
    /// Answers whether this call resumed it.
    pub(crate) fn resume(&self) -> bool {
        let resumed = self.pause.resume();
        if resumed {
            tracing::info!(pool = %self.key, "pool resumed");
        }
        resumed
    }

    /// Queue at the pause gate until the pool resumes (FIFO), until `deadline`
    /// (`Timeout` in phase `Wait`), or until it stops serving. Counted as a waiter.
    /// Cancel safe: a dropped wait leaves the queue (and hands on a permit it was given).
    pub(super) async fn wait_unpaused(
        &self,
        start: Instant,
        deadline: Instant,
    ) -> Result<(), Error> {
        let _gate = self.pause.queue();
        self.queued(start, deadline, self.pause.pass())
            .await?
            .map_err(|_| self.closed_error())
    }
}
