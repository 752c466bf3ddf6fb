//! Opening one connection: a permit from the connect window (`connect_gate.rs`: at most
//! `max_connecting`, a slow start after failures, so a server coming back is not
//! stormed), one attempt bounded by `connect_timeout` and the caller's deadline, panics
//! caught, the outcome reported to the pool's health (which decides, by the error's
//! kind, whether it counts against the endpoint). Retrying, and counting the connect as
//! under way in the pool's figures (attempts and backoff waits), is the caller's business:
//! `checkout.rs` for acquires, [`open_retrying`](PoolShared::open_retrying) for the
//! pool's own connects.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use rand::Rng;
use tokio::time::{timeout_at, Instant};

use super::conn::{Conn, ConnState};
use super::credential::Version;
use super::shared::PoolShared;
use crate::backends::Backend;
use crate::budget::BudgetPermit;
use crate::error::{BackendError, BackendErrorKind, Error, Phase};
use crate::limits::deadline as far_at;
use crate::policy::backoff::Backoff;

/// How one connect attempt ended.
pub(super) enum Attempt<C> {
    Opened(Conn<C>),
    /// The server or the network answered with `error` (reported to the pool's health,
    /// which counted it against the endpoint or not by its kind).
    Failed {
        error: BackendError,
    },
    /// The caller's deadline ended it (waiting for a permit, or mid-attempt): it says
    /// nothing about the server.
    CutShort(BackendError),
}

impl<B: Backend> PoolShared<B> {
    /// One connect attempt, bounded by the connect timeout and never past the caller's
    /// `deadline` (`None`: no caller waits). `Err`: the pool closed, or the backend
    /// panicked. `vouch`: a success counts for the endpoint at once (false when the caller
    /// will probe the new connection first and report that). `budget`: the room taken in
    /// the connection budget, moved into the connection if one opens (else left there).
    pub(super) async fn connect_once(
        &self,
        deadline: Option<Instant>,
        vouch: bool,
        budget: &mut Option<BudgetPermit>,
    ) -> Result<Attempt<B::Connection>, Error> {
        let permit_by =
            deadline.unwrap_or_else(|| far_at(Instant::now(), self.config.connect_timeout));
        let permit = match timeout_at(permit_by, self.connects.acquire()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(self.closed_error()),
            Err(_) => {
                return Ok(Attempt::CutShort(BackendError::new(
                    BackendErrorKind::Timeout,
                    "waited for a connect permit until the deadline",
                )))
            }
        };
        let now = Instant::now();
        self.observe.connect_attempted();
        let own_limit = far_at(now, self.config.connect_timeout);
        let limit = deadline.map_or(own_limit, |d| d.min(own_limit));
        // The credential of the moment (see `credential.rs`): a rotation during the
        // attempt makes this connection one of the old credential, closed on return.
        let credential = self.credential.current();
        let attempt = AssertUnwindSafe(credential.connect(&*self.backend)).catch_unwind();
        let error = match timeout_at(limit, attempt).await {
            Ok(Ok(Ok(raw))) => {
                self.connects.succeeded();
                if vouch {
                    self.health.connected();
                }
                credential.mark_verified();
                self.observe.connected(now.elapsed());
                drop(permit);
                let conn = self.adopt(raw, credential, budget.take());
                // A failing hook fails the connection, not the endpoint: nothing is
                // reported to the breaker (see `hook_run.rs`).
                return Ok(match self.after_connect(conn, deadline).await? {
                    Ok(conn) => Attempt::Opened(conn),
                    Err(cut_short) => Attempt::CutShort(cut_short),
                });
            }
            Ok(Ok(Err(e))) => e,
            Ok(Err(payload)) => return Err(self.crashed(Phase::Connect, &*payload)),
            Err(_) if limit < own_limit => {
                let waited = limit.saturating_duration_since(now);
                return Ok(Attempt::CutShort(BackendError::new(
                    BackendErrorKind::Timeout,
                    format!("connect attempt cut short by the deadline after {waited:?}"),
                )));
            }
            Err(_) => BackendError::new(
                BackendErrorKind::Timeout,
                format!(
                    "connect attempt timed out after {:?}",
                    limit.saturating_duration_since(now)
                ),
            ),
        };
        drop(permit);
        self.counters.connect_failed();
        self.observe.connect_failed(error.kind());
        tracing::debug!(pool = %self.key, error = %error, "connect failed");
        let counted = self.health.connect_failed(&error);
        if counted {
            self.connects.failed();
        }
        Ok(Attempt::Failed { error })
    }

    /// The pool's own connects (warm-up, refill, a probe with nothing idle): retried with
    /// backoff until `deadline`, but never against a breaker that is not closed, a server
    /// that refused for capacity, or an error retrying cannot fix. `budget`: room already
    /// taken in the connection budget (a background open takes it before, or skips);
    /// without it, room is waited for until `deadline` (a dedicated connection).
    pub(super) async fn open_retrying(
        &self,
        deadline: Instant,
        vouch: bool,
        mut budget: Option<BudgetPermit>,
    ) -> Result<Conn<B::Connection>, Error> {
        let start = Instant::now();
        if budget.is_none() {
            budget = self.budget_by(start, deadline).await?;
        }
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
        // Under way, attempts and backoff waits alike.
        let _connecting = self.counters.connecting();
        loop {
            // No caller waits on a background open: `deadline` bounds its retries, never
            // an attempt, which gets its whole connect timeout (one cut short would say
            // nothing about the endpoint).
            // A failed attempt leaves the room taken for the next one.
            let error = match self.connect_once(None, vouch, &mut budget).await? {
                Attempt::Opened(conn) => {
                    self.capacity
                        .opened(self.counters.live(), self.slots.max_size());
                    return Ok(conn);
                }
                Attempt::CutShort(error) => {
                    self.counters.timed_out();
                    return Err(Error::Timeout {
                        key: self.key,
                        phase: Phase::Connect,
                        elapsed: start.elapsed(),
                        last_error: Some(error),
                    });
                }
                Attempt::Failed { error } => error,
            };
            if error.kind() == BackendErrorKind::Capacity {
                self.capacity.refused(self.counters.live(), Instant::now());
            }
            let now = Instant::now();
            if !error.is_retryable()
                || error.kind() == BackendErrorKind::Capacity
                || self.health.tripped()
                || now >= deadline
            {
                return Err(Error::Backend {
                    key: self.key,
                    phase: Phase::Connect,
                    source: error,
                });
            }
            let delay = backoff.next_delay(&mut rand::rng());
            tokio::time::sleep_until(deadline.min(far_at(now, delay))).await;
        }
    }

    /// One connect with a credential a caller presented, to verify it: bounded by the
    /// connect timeout, under a connect permit, panics caught. A failure is the caller's
    /// alone: it is not counted, not remembered as the pool's last error and not reported
    /// to the breaker.
    /// It waits for room in the connection budget within the same connect timeout; the
    /// room is answered with the connection.
    pub(super) async fn connect_candidate(
        &self,
        candidate: &Version,
    ) -> Result<(B::Connection, Option<BudgetPermit>), Error> {
        let start = Instant::now();
        let limit = far_at(start, self.config.connect_timeout);
        let budget = self.budget_by(start, limit).await?;
        let failed = |source| Error::Backend {
            key: self.key,
            phase: Phase::Connect,
            source,
        };
        let _permit = match timeout_at(limit, self.connects.acquire()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(self.closed_error()),
            Err(_) => {
                return Err(failed(BackendError::new(
                    BackendErrorKind::Timeout,
                    "waited for a connect permit until the connect timeout",
                )))
            }
        };
        let attempt = AssertUnwindSafe(candidate.connect(&*self.backend)).catch_unwind();
        match timeout_at(limit, attempt).await {
            Ok(Ok(Ok(raw))) => Ok((raw, budget)),
            Ok(Ok(Err(e))) => Err(failed(e)),
            Ok(Err(payload)) => Err(self.crashed(Phase::Connect, &*payload)),
            Err(_) => Err(failed(BackendError::new(
                BackendErrorKind::Timeout,
                format!("connect attempt timed out after {:?}", start.elapsed()),
            ))),
        }
    }

    /// Account for a freshly opened connection, opened with `credential`, holding `budget`.
    pub(super) fn adopt(
        &self,
        raw: B::Connection,
        credential: std::sync::Arc<Version>,
        budget: Option<BudgetPermit>,
    ) -> Conn<B::Connection> {
        let now = Instant::now();
        self.counters.opened();
        let expires = self.config.max_lifetime.map(|life| {
            let jitter = self.config.lifetime_jitter.as_nanos() as u64;
            let off = if jitter == 0 {
                0
            } else {
                rand::rng().random_range(0..=jitter)
            };
            far_at(now, life.saturating_sub(Duration::from_nanos(off)))
        });
        Conn::new(ConnState {
            raw,
            created: now,
            expires,
            used: self.hot.nanos(now),
            fresh: true,
            generation: self.incarnation.generation(),
            credential,
            checkout: 0,
            budget,
        })
    }
}
