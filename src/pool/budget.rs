//! The pool's side of the supervisor's connection budget (`src/budget/`): a permit for
//! each connect (waited for by callers, taken only if free by refills), idle connections
//! filed with a nudge to those waiting, and the pool lent as an idle source, so that a
//! caller of another pool waiting for room closes its least recently used idle connection.
//! Without a budget none of this runs: an `Option` is checked at connect and at checkin,
//! and reusing an idle connection never touches it.

use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::conn::Conn;
use super::shared::PoolShared;
use crate::backends::Backend;
use crate::budget::{BudgetPermit, BudgetWait, IdleSource};
use crate::error::{BackendError, BackendErrorKind, Error, Phase};
use crate::observe::reason::CloseReason;

/// What a turn of waiting for budget in an acquire gave.
pub(super) enum BudgetTurn {
    /// Room for one connection.
    Granted(BudgetPermit),
    /// Something else changed (a connection came back to this pool, its state moved):
    /// look again, keeping the place in the queue.
    Again,
    /// The deadline came first.
    TimedOut,
}

impl<B: Backend> IdleSource for PoolShared<B> {
    fn oldest_idle(&self) -> Option<Instant> {
        self.idle.oldest().map(|ns| self.hot.instant(ns))
    }

    fn close_oldest_idle(&self) -> bool {
        match self.idle.pop_oldest() {
            Some(conn) => {
                tracing::debug!(pool = %self.key, "idle connection closed to make room in the connection budget");
                self.counters.budget_evicted();
                self.close_conn(conn, CloseReason::Budget);
                true
            }
            None => false,
        }
    }
}

impl<B: Backend> PoolShared<B> {
    /// Lend this pool's idle connections to the budget's waiters (the factory calls it
    /// once the pool is shared).
    pub(crate) fn bind_budget(self: &Arc<Self>) {
        if let Some(budget) = &self.budget {
            let weak: Weak<dyn IdleSource> = Arc::downgrade(self) as Weak<dyn IdleSource>;
            budget.bind(weak);
        }
    }

    /// File a connection as idle (returned, opened by a refill or a probe, put back);
    /// tell callers waiting for budget, who may close it (or an older one) to make room.
    /// Every push to the idle list goes through here, so none is missed.
    #[inline]
    pub(super) fn file_idle(&self, conn: Conn<B::Connection>) {
        self.idle.push(conn);
        if let Some(budget) = &self.budget {
            budget.nudge();
        }
    }

    /// For a background connect (warm-up, refill, a probe's): `Ok(None)` without a
    /// budget, `Ok(Some)` with room, `Err(())` without room — the connect is skipped, it
    /// never waits nor takes room a caller waits for.
    pub(super) fn budget_if_free(&self) -> Result<Option<BudgetPermit>, ()> {
        match &self.budget {
            None => Ok(None),
            Some(b) => b.try_take().map(Some).ok_or(()),
        }
    }

    /// One turn of an acquire waiting for budget (only called with a budget): room at
    /// once, or a place in the queue (`wait`, kept across turns so the order holds) until
    /// room, a connection returned to this pool, a change of state, or `deadline`.
    pub(super) async fn budget_turn(
        &self,
        wait: &mut Option<BudgetWait>,
        deadline: Instant,
    ) -> BudgetTurn {
        let Some(budget) = &self.budget else {
            return BudgetTurn::Again;
        };
        if wait.is_none() {
            if let Some(permit) = budget.try_take() {
                return BudgetTurn::Granted(permit);
            }
            self.counters.budget_waited();
            *wait = Some(budget.wait());
        }
        let queued = wait.as_mut().expect("set above");
        let (returned, _waiting) = self.idle.wait_for_return();
        let state = self.hot.changed();
        tokio::pin!(returned, state);
        returned.as_mut().enable();
        state.as_mut().enable();
        if !self.idle.is_empty() || !self.hot.is_open() {
            return BudgetTurn::Again;
        }
        let turn = tokio::select! {
            biased;
            permit = queued.permit_by(deadline) => match permit {
                Some(permit) => BudgetTurn::Granted(permit),
                None => BudgetTurn::TimedOut,
            },
            () = returned => BudgetTurn::Again,
            () = state => BudgetTurn::Again,
        };
        if !matches!(turn, BudgetTurn::Again) {
            *wait = None;
        }
        turn
    }

    /// Room for a connect made for a caller outside the slots (a dedicated connection, a
    /// credential verification), waited for until `deadline`. `Ok(None)` without a budget.
    pub(super) async fn budget_by(
        &self,
        start: Instant,
        deadline: Instant,
    ) -> Result<Option<BudgetPermit>, Error> {
        let Some(budget) = &self.budget else {
            return Ok(None);
        };
        if let Some(permit) = budget.try_take() {
            return Ok(Some(permit));
        }
        self.counters.budget_waited();
        match budget.wait().permit_by(deadline).await {
            Some(permit) => Ok(Some(permit)),
            None => Err(self.budget_timed_out(start)),
        }
    }

    /// The error of a connect that found no room in the budget by its deadline: a
    /// timeout waiting (`Phase::Wait`), whose last error names the budget.
    pub(super) fn budget_timed_out(&self, start: Instant) -> Error {
        self.counters.timed_out();
        let limits = self
            .budget
            .as_ref()
            .map(|b| b.describe())
            .unwrap_or_default();
        Error::Timeout {
            key: self.key,
            phase: Phase::Wait,
            elapsed: start.elapsed(),
            last_error: Some(BackendError::new(
                BackendErrorKind::Capacity,
                format!("no room in the connection budget ({limits}) before the deadline"),
            )),
        }
    }
}
