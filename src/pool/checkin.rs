//! Checkin: a guard gives its connection back. Synchronous (no task, no allocation)
//! unless the backend must reset the connection, test-on-return is on or an
//! `after_release` hook is set (`false` from it closes the connection); connections
//! that are broken, stale, expired, overflow or owed to a shrink are closed instead.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::{timeout_at, Instant};

use super::conn::Conn;
use super::shared::PoolShared;
use crate::backends::Backend;
use crate::error::Phase;
use crate::limits::deadline as far_at;
use crate::observe::reason::CloseReason;

impl<B: Backend> PoolShared<B> {
    /// Take back a connection from a guard. Synchronous unless the backend must reset it.
    /// `out_since`: when it was handed out, on the pool's clock (its use time ends now).
    pub(crate) fn release(
        self: &Arc<Self>,
        mut conn: Conn<B::Connection>,
        broken: bool,
        out_since: u64,
    ) {
        let now = Instant::now();
        let now_ns = self.hot.nanos(now);
        self.observe
            .used(Duration::from_nanos(now_ns.saturating_sub(out_since)));
        // Reclaimed as a leak: its slot was freed then and it was no longer counted live;
        // it comes back as a connection with no slot, kept only if there is room.
        let reclaimed = conn.checkout != 0 && !self.leaks.checked_in(conn.checkout, now);
        if reclaimed {
            self.counters.reattached();
        } else {
            self.hot.checked_in();
        }
        let died = self.conn_is_broken(&mut conn.raw);
        if died {
            // Not evidence against the endpoint (a terminated backend, a cancelled
            // command): close it, and probe the idle ones that may share its fate.
            self.health.suspect(now);
        }
        // Why it is not kept, if it is not (the first reason that applies).
        let doomed = if broken || died {
            Some(CloseReason::Broken)
        } else if !self.hot.is_open() {
            Some(CloseReason::Shutdown)
        } else if conn.outlived(self.incarnation.generation(), now) {
            Some(self.outlived_reason(&conn))
        // Overflow connections are closed on return, unless someone is waiting (queued
        // for a slot, or holding one and waiting for a connection: behind a breaker, a
        // full server or the connection budget): then handing them over beats closing one
        // and opening another (the reaper closes the surplus once nobody waits).
        } else if self.counters.live() > self.slots.max_size()
            && self.hot.waiters() == 0
            && self.idle.waiting() == 0
        {
            Some(CloseReason::Overflow)
        } else if self.slots.shrinking() {
            Some(CloseReason::Shrink)
        } else {
            None
        };
        let keep = doomed.is_none();
        let reset = keep && self.config.reset_on_return && self.conn_needs_reset(&conn.raw);
        // An `after_release` hook, like a reset, runs in a task while the slot stays taken.
        let clean =
            reset || (keep && (self.config.test_on_return || self.hooks.after_release.is_some()));
        if !keep || (clean && reclaimed) {
            // (Cleaning holds a slot until it is done; a reclaimed connection has none.)
            self.close_conn(conn, doomed.unwrap_or(CloseReason::Overflow));
            if !reclaimed {
                self.release_slot();
            }
            return;
        }
        if clean {
            // The slot stays taken until the connection is clean, so nobody gets it dirty.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    // The guard exists before the task does: a task dropped unpolled (its
                    // runtime shut down first) still closes the connection and frees the slot.
                    let job = Cleaning {
                        pool: Arc::clone(self),
                        conn: Some(conn),
                        reason: CloseReason::Shutdown,
                    };
                    rt.spawn(job.run(reset));
                }
                Err(_) => {
                    self.close_conn(conn, CloseReason::FailedReset);
                    self.release_slot();
                }
            }
            return;
        }
        conn.used = now_ns;
        conn.fresh = false;
        self.file_idle(conn);
        if !reclaimed {
            self.release_slot();
        }
    }
}

/// A returned connection being cleaned on a task of its own; it holds its slot. Dropped
/// before it finishes (the runtime the task was spawned on shut down, even before polling
/// it), it closes the connection and gives the slot back: nothing leaks.
struct Cleaning<B: Backend> {
    pool: Arc<PoolShared<B>>,
    conn: Option<Conn<B::Connection>>,
    /// Why it is closed if dropped now: the runtime shut down before it finished, until
    /// `run` knows better.
    reason: CloseReason,
}

impl<B: Backend> Drop for Cleaning<B> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.close_conn(conn, self.reason);
            self.pool.release_slot();
        }
    }
}

impl<B: Backend> Cleaning<B> {
    async fn run(mut self, reset: bool) {
        let pool = Arc::clone(&self.pool);
        let start = Instant::now();
        let deadline = far_at(start, pool.config.probe_timeout);
        let raw = &mut self.conn.as_mut().expect("present until filed").raw;
        let ok = if reset {
            match timeout_at(
                deadline,
                AssertUnwindSafe(pool.backend.reset(raw)).catch_unwind(),
            )
            .await
            {
                Ok(Ok(Ok(()))) => true,
                Ok(Ok(Err(e))) => {
                    tracing::debug!(pool = %pool.key, error = %e, "reset failed; closing connection");
                    false
                }
                Ok(Err(payload)) => {
                    pool.crashed(Phase::Reset, &*payload);
                    false
                }
                Err(_) => false,
            }
        } else {
            true
        };
        let ok = ok
            && (!pool.config.test_on_return || pool.probe_raw(raw, deadline, start).await.is_ok())
            && pool.after_release(raw).await;
        let retired = self.conn.as_ref().is_some_and(|c| c.credential.retired());
        if ok && pool.hot.is_open() && !retired {
            let mut conn = self.conn.take().expect("present until filed");
            conn.used = pool.hot.nanos(Instant::now());
            conn.fresh = false;
            pool.file_idle(conn);
            pool.release_slot();
            return;
        }
        self.reason = if !ok {
            CloseReason::FailedReset
        } else if retired {
            CloseReason::StaleGeneration
        } else {
            CloseReason::Shutdown
        };
        // Otherwise dropping `self` closes it and gives the slot back.
    }
}
