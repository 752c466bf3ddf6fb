//! Checkout past the usual case (`acquire.rs` has the entry and the usual case): acquire
//! a slot (at once, or queued FIFO until the deadline), then reuse an idle connection
//! (probing it when due) or open one (`connect.rs`), retrying with backoff. Waits where waiting can help — for the breaker's next trial, for a connection
//! to come back when the server has no room for more — and fails at once where it cannot.
//! Runs in the caller's task; every await point is cancellation safe (slot and connection
//! are held in drop guards).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::TryAcquireError;
use tokio::time::Instant;

use super::acquire::span_record;
use super::budget::BudgetTurn;
use super::capacity::Room;
use super::conn::Conn;
use super::connect::Attempt;
use super::guard::PooledConnection;
use super::hook_run::HookFailure;
use super::hooks::{AcquireVerdict, HookPoint};
use super::shared::{PoolShared, Slot};
use crate::backends::Backend;
use crate::error::{BackendError, BackendErrorKind, Error, Phase};
use crate::limits::deadline as far_at;
use crate::observe::reason::CloseReason;
use crate::policy::backoff::Backoff;

impl<B: Backend> PoolShared<B> {
    /// An acquire past the usual case (`acquire.rs`), with the slot it holds already, if
    /// any.
    pub(super) async fn acquire_slow(
        self: &Arc<Self>,
        start: Instant,
        budget: Duration,
        retry_connect: bool,
        slot: Option<Slot<'_, B>>,
    ) -> Result<PooledConnection<B>, Error> {
        let deadline = far_at(start, budget);
        // Fail fast exactly when waiting cannot help: the breaker refuses connects past
        // this caller's deadline and there is no idle connection to reuse.
        if let Some(until) = self.health.refusing(start) {
            if (!retry_connect || until >= deadline) && self.idle.is_empty() {
                return Err(self.health.circuit_open(start, None));
            }
        }
        let mut slot = slot;
        let slot = loop {
            if slot.is_none() && self.pause.gated() {
                self.wait_unpaused(start, deadline).await?;
            }
            let taken = match slot.take() {
                Some(slot) => slot,
                None => match self.try_slot() {
                    Ok(slot) => slot,
                    Err(TryAcquireError::Closed) => return Err(self.closed_error()),
                    Err(TryAcquireError::NoPermits) => self.wait_for_slot(start, deadline).await?,
                },
            };
            // Paused while queued for a slot: give it back and queue at the gate.
            if !self.pause.is_paused() {
                break taken;
            }
        };
        // The pool may have failed or closed while we waited.
        self.check_open()?;
        span_record("wait_us", start);
        self.hot.touch(self.hot.nanos(start));
        // Connections the `before_acquire` hook closed and asked to replace.
        let mut replaced = 0usize;
        loop {
            let conn = self.checkout(start, deadline, retry_connect).await?;
            let mut pending = self.pending(conn);
            let verdict = match self.before_acquire(pending.raw(), deadline).await {
                None | Some(Ok(AcquireVerdict::HandOut)) => {
                    let now = Instant::now();
                    return Ok(self.hand_out(
                        slot,
                        pending.keep(),
                        now.saturating_duration_since(start),
                        self.hot.nanos(now),
                    ));
                }
                Some(Ok(verdict)) => verdict,
                Some(Err(HookFailure::CutShort)) => {
                    return Err(self.timed_out(start, Phase::Probe, None))
                }
                Some(Err(failure)) => return Err(self.before_acquire_failed(failure)),
            };
            match verdict {
                AcquireVerdict::KeepAndFail => {
                    self.file_idle(pending.keep());
                    return Err(self.hook_error(
                        HookPoint::BeforeAcquire,
                        "refused this acquire; the connection stays in the pool",
                    ));
                }
                AcquireVerdict::CloseAndFail => {
                    drop(pending);
                    return Err(self.hook_error(
                        HookPoint::BeforeAcquire,
                        "closed the connection and refused this acquire",
                    ));
                }
                _ => drop(pending),
            }
            replaced += 1;
            // Past one round of the pool's connections, pace the new connects (a hook that
            // refuses everything must not spin on a server that connects at once).
            let now = Instant::now();
            if replaced > self.slots.max_size() && now < deadline {
                let delay = self
                    .config
                    .backoff_initial
                    .saturating_mul((replaced - self.slots.max_size()) as u32);
                let until = deadline.min(far_at(now, delay.min(self.config.backoff_max)));
                tokio::time::sleep_until(until).await;
            }
            if Instant::now() >= deadline {
                return Err(self.hook_error(
                    HookPoint::BeforeAcquire,
                    format!("closed {replaced} connections, asking for another, until the acquire deadline"),
                ));
            }
        }
    }

    /// With a slot held: reuse an idle connection (probing it when due) or open one,
    /// until `deadline`. With `retry_connect` false the first failed connect (or a
    /// breaker that refuses connects) is the answer, so the caller can try elsewhere.
    async fn checkout(
        &self,
        start: Instant,
        deadline: Instant,
        retry_connect: bool,
    ) -> Result<Conn<B::Connection>, Error> {
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
        let mut last: Option<BackendError> = None;
        // What a timeout names: connecting, or waiting for a connection to come back.
        let mut phase = Phase::Connect;
        // With a connection budget: the place in its queue (kept across turns, so the
        // order holds) and the room taken, kept for the next attempt if one fails.
        let mut budget_wait = None;
        let mut room = None;
        loop {
            self.check_open()?;
            if let Some(conn) = self.reuse(start, deadline).await? {
                return Ok(conn);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.timed_out(start, phase, last));
            }
            // An open breaker blocks connects until its next trial: wait for it (or for a
            // connection to come back) when that is before the deadline, else fail now.
            if let Some(until) = self.health.refusing(now) {
                if !retry_connect || until >= deadline {
                    return Err(self.health.circuit_open(now, last));
                }
                phase = Phase::Connect;
                self.wait_for_change(until).await;
                continue;
            }
            // No room in the supervisor's connection budget: wait in its queue (FIFO per
            // endpoint) while the oldest idle connections of other pools close for room;
            // a connection returned to this pool meanwhile is served instead.
            if self.budget.is_some() && room.is_none() {
                match self.budget_turn(&mut budget_wait, deadline).await {
                    BudgetTurn::Granted(permit) => room = Some(permit),
                    BudgetTurn::Again => {
                        phase = Phase::Wait;
                        continue;
                    }
                    BudgetTurn::TimedOut => return Err(self.budget_timed_out(start)),
                }
            }
            // A server that refused for capacity gets no connect past what it accepted,
            // but one try to grow when due.
            let open = self.counters.live() + self.counters.connects_under_way();
            let grow = match self.capacity.room(open, now) {
                Room::Free => None,
                Room::Grow(grow) => Some(grow),
                Room::Full {
                    next_try: Some(next_try),
                } => {
                    phase = Phase::Wait;
                    tokio::select! {
                        () = self.wait_for_change(next_try.min(deadline)) => {}
                        () = self.capacity.room_freed(|| {
                            self.counters.live() + self.counters.connects_under_way()
                        }) => {}
                    }
                    continue;
                }
                Room::Full { next_try: None } => {
                    phase = Phase::Wait;
                    tokio::select! {
                        () = self.wait_for_change(deadline) => {}
                        () = self.capacity.grow_ends() => {}
                    }
                    continue;
                }
            };
            let trial = match self.health.admit(now) {
                Ok(trial) => trial,
                // Half-open with its one trial under way: wait for it to end (an outcome,
                // or none: then the trial is free to take).
                Err(e) => {
                    drop(grow);
                    if !retry_connect {
                        return Err(e);
                    }
                    tokio::select! {
                        () = self.wait_for_change(deadline) => {}
                        () = self.health.trial_ends() => {}
                    }
                    continue;
                }
            };
            // Under way until this turn ends: the attempt and its backoff wait.
            let _connecting = self.counters.connecting();
            let connecting = Instant::now();
            let attempt = self.connect_once(Some(deadline), true, &mut room).await;
            span_record("connect_us", connecting);
            let err = match attempt {
                Ok(Attempt::Opened(conn)) => {
                    self.capacity
                        .opened(self.counters.live(), self.slots.max_size());
                    return Ok(conn);
                }
                Ok(Attempt::Failed { error, .. }) => error,
                Ok(Attempt::CutShort(error)) => {
                    // The deadline, not the endpoint, ended it: the next turn reports the
                    // timeout with an earlier attempt's error if there was one.
                    last.get_or_insert(error);
                    continue;
                }
                Err(e) => return Err(e),
            };
            // The outcome was reported to the breaker if it counted; a trial that learnt
            // nothing (an error that says nothing about the endpoint) is handed to the
            // next caller as it drops.
            drop(trial);
            if err.kind() == BackendErrorKind::Capacity {
                self.capacity.refused(self.counters.live(), Instant::now());
                phase = Phase::Wait;
                last = Some(err);
                continue;
            }
            // Not a capacity answer: the next try to grow may go.
            drop(grow);
            if !err.is_retryable() {
                self.health.set_healthy(false);
                return Err(Error::Backend {
                    key: self.key,
                    phase: Phase::Connect,
                    source: err,
                });
            }
            if !retry_connect && Instant::now() < deadline {
                return Err(Error::Backend {
                    key: self.key,
                    phase: Phase::Connect,
                    source: err,
                });
            }
            last = Some(err);
            phase = Phase::Connect;
            let delay = backoff.next_delay(&mut rand::rng());
            self.wait_for_change(deadline.min(far_at(Instant::now(), delay)))
                .await;
        }
    }

    /// An idle connection fit to hand out, probed first when due; `None` when none is.
    async fn reuse(
        &self,
        start: Instant,
        deadline: Instant,
    ) -> Result<Option<Conn<B::Connection>>, Error> {
        let start_ns = self.hot.nanos(start);
        while let Some(conn) = self.pop_reusable(start) {
            if !self.due_for_probe(&conn, start_ns) {
                return Ok(Some(conn));
            }
            let mut pending = self.pending(conn);
            let probing = Instant::now();
            let probed = self.probe_raw(pending.raw(), deadline, start).await;
            span_record("probe_us", probing);
            match probed {
                Ok(()) => return Ok(Some(pending.keep())),
                Err(e @ (Error::BackendPanic { .. } | Error::Timeout { .. })) => return Err(e),
                Err(_) => continue, // dead connection: `pending` closes it; try the next
            }
        }
        Ok(None)
    }

    /// Probe before handing out: while the breaker is not closed, when a connection broke
    /// since this one was last used, or on test-on-checkout past the bypass window.
    #[inline]
    pub(super) fn due_for_probe(&self, conn: &Conn<B::Connection>, start: u64) -> bool {
        self.health.tripped()
            || self.health.suspects(conn.used)
            || (self.config.test_on_checkout
                && u128::from(start.saturating_sub(conn.used))
                    > self.config.checkout_bypass.as_nanos())
    }

    /// Wait until `until`, or until a connection comes back to the idle list, the breaker
    /// has news, or the pool stops serving — whichever is first.
    async fn wait_for_change(&self, until: Instant) {
        let (returned, _waiting) = self.idle.wait_for_return();
        let changed = self.health.changed();
        let state = self.hot.changed();
        tokio::pin!(returned, changed, state);
        returned.as_mut().enable();
        changed.as_mut().enable();
        state.as_mut().enable();
        // Registered before looking: a return in between is not missed.
        if !self.idle.is_empty() || !self.hot.is_open() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = returned => {}
            () = changed => {}
            () = state => {}
        }
    }

    pub(super) fn timed_out(
        &self,
        start: Instant,
        phase: Phase,
        last: Option<BackendError>,
    ) -> Error {
        self.counters.timed_out();
        self.observe.timed_out();
        Error::Timeout {
            key: self.key,
            phase,
            elapsed: start.elapsed(),
            // No attempt of its own got an answer (it waited for a trial, a permit or a
            // returned connection): the pool's last connect error says why.
            last_error: last.or_else(|| self.health.last_error()),
        }
    }

    /// The most recently used idle connection fit to reuse (checkout) or probe. Those of
    /// an older generation, expired or known broken (the server dropped them) are closed
    /// on the way: the pool replaces them, and they say nothing about the server, so they
    /// must not count against it.
    #[inline]
    pub(super) fn pop_reusable(&self, now: Instant) -> Option<Conn<B::Connection>> {
        let generation = self.incarnation.generation();
        loop {
            let mut conn = self.idle.pop()?;
            if conn.outlived(generation, now) {
                let reason = self.outlived_reason(&conn);
                self.close_conn(conn, reason);
                continue;
            }
            if self.conn_is_broken(&mut conn.raw) {
                self.close_conn(conn, CloseReason::Broken);
                continue;
            }
            return Some(conn);
        }
    }
}
