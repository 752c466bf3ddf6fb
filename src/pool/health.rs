//! The pool's health: circuit-breaker admission and outcome reports, probes, and leak
//! bookkeeping. The breaker and leak tracker themselves are pure modules; this is the glue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::core::{Conn, Pending, PoolShared, Slot};
use crate::backend::Backend;
use crate::breaker::{Admission, BreakerState, Change, CircuitBreaker};
use crate::error::{BackendError, Error};
use crate::leak::{LeakEvent, Return};

/// A half-open breaker's one trial. Dropped without an outcome (the acquire was cancelled
/// or failed before probing or connecting), it frees the trial for someone else.
pub(crate) struct TrialGuard<'a, B: Backend> {
    pool: &'a PoolShared<B>,
}

impl<B: Backend> TrialGuard<'_, B> {
    /// The outcome was reported; nothing to undo.
    pub(crate) fn resolved(self) {
        std::mem::forget(self);
    }
}

impl<B: Backend> Drop for TrialGuard<'_, B> {
    fn drop(&mut self) {
        self.pool.breaker.lock().trial_abandoned();
    }
}

struct Flag<'a>(&'a AtomicBool);

impl Drop for Flag<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<B: Backend> PoolShared<B> {
    /// May an acquire go ahead? A closed breaker costs one atomic load.
    pub(super) fn admit(&self, now: Instant) -> Result<Option<TrialGuard<'_, B>>, Error> {
        if !self.breaker_tripped.load(Ordering::Acquire) {
            return Ok(None);
        }
        let change = {
            let mut b = self.breaker.lock();
            match b.admit(now) {
                Admission::Allowed => return Ok(None),
                Admission::Trial(change) => change,
                Admission::Rejected { .. } => return Err(self.open_error(&b, now, None)),
            }
        };
        self.publish(change);
        Ok(Some(TrialGuard { pool: self }))
    }

    /// The error for an acquire refused or stopped by an open breaker.
    pub(super) fn circuit_open(&self, now: Instant, last_error: Option<BackendError>) -> Error {
        self.open_error(&self.breaker.lock(), now, last_error)
    }

    /// [`circuit_open`](Self::circuit_open) with the breaker already locked; without
    /// `last_error`, the breaker's own.
    fn open_error(
        &self,
        b: &CircuitBreaker,
        now: Instant,
        last_error: Option<BackendError>,
    ) -> Error {
        Error::CircuitOpen {
            key: self.key,
            retry_in: b.retry_at().saturating_duration_since(now),
            last_error: last_error.or_else(|| b.last_error().cloned()),
        }
    }

    pub(super) fn report_success(&self) {
        let change = self.breaker.lock().on_success(Instant::now());
        self.publish(change);
    }

    pub(super) fn report_failure(&self, error: &BackendError) {
        let change =
            self.breaker
                .lock()
                .on_failure(Instant::now(), error.clone(), &mut rand::rng());
        self.publish(change);
    }

    fn publish(&self, change: Option<Change>) {
        let Some(change) = change else { return };
        self.breaker_tripped
            .store(change.to != BreakerState::Closed, Ordering::Release);
        match change.to {
            BreakerState::Open => {
                tracing::warn!(pool = %self.key, from = %change.from, reason = %change.reason, "circuit breaker opened")
            }
            _ => {
                tracing::info!(pool = %self.key, from = %change.from, to = %change.to, reason = %change.reason, "circuit breaker transition")
            }
        }
        if let Some(sink) = &self.events {
            sink(self.key, change);
        }
    }

    /// Probe the endpoint: an idle connection if there is one, else a fresh one if a slot is
    /// free; a pool whose slots are all busy is judged by its last connect.
    ///
    /// At most one probe runs at a time (a second caller is judged by history). While the
    /// breaker is open the probe is refused; once the open time has passed the probe is
    /// the half-open trial, so a pool with no traffic still heals.
    ///
    /// `open_within` bounds opening a connection when none is idle to probe: a caller
    /// waiting on a health check passes its budget; the background probe passes at least
    /// the connect timeout, since a connect is judged by that, and a probe budget shorter
    /// than a slow but working server's connect must not make it look dead.
    pub(crate) async fn probe(
        self: &Arc<Self>,
        budget: Duration,
        open_within: Duration,
    ) -> Result<(), String> {
        if self.is_closed() {
            return Err(self.closed_error().to_string());
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return self.judge_by_history();
        }
        let _probing = Flag(&self.probing);
        let start = Instant::now();
        let deadline = start + budget;
        let _trial = self.admit(start).map_err(|e| e.to_string())?;
        let next = self.pop_reusable(start);
        let result = if let Some(conn) = next {
            let Ok(p) = self.slots.try_acquire() else {
                // Every slot is busy: put it back and judge by recent history.
                self.idle.lock().push_back(conn);
                return self.judge_by_history();
            };
            p.forget();
            let _slot = Slot { pool: self };
            let mut pending = Pending {
                pool: self,
                conn: Some(conn),
            };
            let r = self
                .probe_raw(
                    &mut pending.conn.as_mut().expect("set above").raw,
                    deadline,
                    start,
                )
                .await;
            if r.is_ok() {
                let mut c = pending.conn.take().expect("set above");
                c.last_used = Instant::now();
                self.idle.lock().push_back(c);
            }
            r
        } else if self.connecting.load(Ordering::Relaxed) > 0 {
            // A connect is under way (a warm-up, a refill, an acquire): its outcome is the
            // verdict, and opening one more would leave the pool above what it wants.
            return self.judge_by_history();
        } else if self.room() > 0 {
            match self.open_one(start + open_within).await {
                Ok(true) => Ok(()),
                Ok(false) => return self.judge_by_history(),
                Err(e) => Err(e),
            }
        } else {
            return self.judge_by_history();
        };
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        result.map_err(|e| match &e {
            // "… failed" says not why; the others show their last error already.
            Error::Backend { source, .. } => format!("{e}: {source}"),
            _ => e.to_string(),
        })
    }

    /// The most recently used idle connection fit to reuse (checkout) or probe. Those of
    /// an older generation, expired or known broken (the server dropped them) are closed
    /// on the way: the pool replaces them, and they say nothing about the server, so they
    /// must not count against it.
    pub(super) fn pop_reusable(&self, now: Instant) -> Option<Conn<B::Connection>> {
        let generation = self.generation.load(Ordering::Relaxed);
        loop {
            let mut conn = self.idle.lock().pop_back()?;
            if conn.generation != generation
                || conn.expires.is_some_and(|e| e <= now)
                || self.backend.is_broken(&mut conn.raw)
            {
                self.close_conn(conn);
                continue;
            }
            return Some(conn);
        }
    }

    fn judge_by_history(&self) -> Result<(), String> {
        // An open breaker is the freshest verdict there is (the probe running now may be
        // the one that opened it).
        if self.breaker_tripped.load(Ordering::Acquire) {
            let b = self.breaker.lock();
            if b.state() == BreakerState::Open {
                return Err(self.open_error(&b, Instant::now(), None).to_string());
            }
        }
        match (
            self.healthy.load(Ordering::Relaxed),
            self.last_error.lock().as_ref(),
        ) {
            (false, Some(e)) => Err(e.to_string()),
            _ => Ok(()),
        }
    }

    /// Fit to route to: breaker closed and the last probe or connect healthy.
    pub(crate) fn serving(&self) -> bool {
        !self.breaker_tripped.load(Ordering::Acquire) && self.healthy.load(Ordering::Relaxed)
    }

    /// Checked out plus waiting: what least-loaded routing compares.
    pub(crate) fn load(&self) -> usize {
        self.in_use.load(Ordering::Relaxed) + self.waiters.load(Ordering::Relaxed)
    }

    /// Record a return with the leak tracker. False: the checkout was reclaimed as a
    /// leak, so the caller must only close the connection.
    pub(super) fn checked_in(&self, id: u64, now: Instant) -> bool {
        let Some(leaks) = &self.leaks else {
            return true;
        };
        let answer = leaks.lock().checkin(id, now);
        match answer {
            Return::Normal => true,
            Return::Late { held } => {
                tracing::info!(pool = %self.key, checkout = id, ?held, "leaked connection returned");
                true
            }
            Return::Reclaimed => {
                tracing::info!(pool = %self.key, checkout = id, "reclaimed connection returned; closing it");
                false
            }
        }
    }

    /// Report connections held past `leak_threshold` (once each) and free the slots of
    /// those held past `leak_reclaim_after`. Called by the maintenance tick.
    pub(crate) fn scan_leaks(&self) -> usize {
        let Some(leaks) = &self.leaks else { return 0 };
        let events = leaks.lock().scan(Instant::now());
        let n = events.len();
        for event in events {
            match event {
                LeakEvent::Leaked {
                    id,
                    held,
                    backtrace,
                } => {
                    self.leaks_reported.fetch_add(1, Ordering::Relaxed);
                    match backtrace {
                        Some(bt) => {
                            tracing::warn!(pool = %self.key, checkout = id, ?held, backtrace = %bt, "connection leak suspected")
                        }
                        None => {
                            tracing::warn!(pool = %self.key, checkout = id, ?held, "connection leak suspected (enable leak_backtrace to see where it was checked out)")
                        }
                    }
                }
                LeakEvent::Reclaim { id, held } => {
                    self.leaks_reclaimed.fetch_add(1, Ordering::Relaxed);
                    self.in_use.fetch_sub(1, Ordering::Relaxed);
                    self.release_slot();
                    tracing::warn!(pool = %self.key, checkout = id, ?held, "reclaimed the slot of a leaked connection");
                }
            }
        }
        n
    }
}
