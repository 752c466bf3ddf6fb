//! Checkout: acquire a slot (at once, or queued FIFO until the deadline), then reuse an
//! idle connection (probing it when due) or open one, retrying with backoff. Runs in the
//! caller's task; every await point is cancellation safe (slot and connection are held in
//! drop guards).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rand::Rng;
use tokio::sync::TryAcquireError;
use tokio::time::{timeout_at, Instant};

use super::conn::Conn;
use super::guard::PooledConnection;
use super::shared::{PoolShared, Slot};
use crate::backends::Backend;
use crate::error::{BackendError, BackendErrorKind, Error, Phase};
use crate::policy::backoff::Backoff;

impl<B: Backend> PoolShared<B> {
    /// Check out a connection within the pool's acquire timeout.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<PooledConnection<B>, Error> {
        self.acquire_within(self.config.acquire_timeout).await
    }

    /// Check out a connection within `budget`.
    pub(crate) async fn acquire_within(
        self: &Arc<Self>,
        budget: Duration,
    ) -> Result<PooledConnection<B>, Error> {
        self.acquire_inner(budget, true).await
    }

    /// Like [`acquire_within`](Self::acquire_within), but a failed connect attempt is
    /// answered at once instead of retried with backoff, so the caller can try another
    /// endpoint (replica-set reads, topology probes).
    pub(crate) async fn acquire_no_retry(
        self: &Arc<Self>,
        budget: Duration,
    ) -> Result<PooledConnection<B>, Error> {
        self.acquire_inner(budget, false).await
    }

    async fn acquire_inner(
        self: &Arc<Self>,
        budget: Duration,
        retry_connect: bool,
    ) -> Result<PooledConnection<B>, Error> {
        let start = Instant::now();
        self.check_open()?;
        let mut trial = self.health.admit(start)?;
        let slot = match self.try_slot() {
            Ok(slot) => slot,
            Err(TryAcquireError::Closed) => return Err(self.closed_error()),
            Err(TryAcquireError::NoPermits) => {
                let slot = self.wait_for_slot(start, budget).await?;
                // The breaker may have opened while we queued: a waiter woken then must
                // not make one more connect to a dead endpoint (the slot frees on `?`).
                if trial.is_none() {
                    trial = self.health.admit(Instant::now())?;
                }
                slot
            }
        };
        // The pool may have failed or closed while we waited.
        self.check_open()?;
        self.hot.touch(start);
        let deadline = start + budget;
        let mut conn = self
            .checkout(start, deadline, trial.is_some(), retry_connect)
            .await?;
        // A trial's checkout probed or connected, so its outcome is already reported.
        if let Some(t) = trial {
            t.resolved();
        }
        conn.checkout = self.leaks.checkout();
        slot.disarm();
        self.hot.checked_out();
        Ok(PooledConnection::new(Arc::clone(self), conn))
    }

    async fn wait_for_slot(&self, start: Instant, budget: Duration) -> Result<Slot<'_, B>, Error> {
        let (queued, _queued) = self.hot.queue();
        if queued >= self.config.max_waiters {
            return Err(Error::PoolSaturated {
                key: self.key,
                waiters: queued,
            });
        }
        let wait = async {
            let mut acquire = std::pin::pin!(self.slot());
            loop {
                // Registered before the state is read, so a change in between is not missed.
                let mut changed = std::pin::pin!(self.hot.changed());
                changed.as_mut().enable();
                if !self.hot.is_open() {
                    return None;
                }
                tokio::select! {
                    biased;
                    permit = &mut acquire => return Some(permit),
                    () = &mut changed => {}
                }
            }
        };
        match timeout_at(start + budget, wait).await {
            Ok(Some(Ok(slot))) => Ok(slot),
            Ok(Some(Err(_)) | None) => Err(self.closed_error()),
            Err(_) => {
                self.counters.timed_out();
                Err(Error::Timeout {
                    key: self.key,
                    phase: Phase::Wait,
                    elapsed: start.elapsed(),
                    last_error: self.health.last_error(),
                })
            }
        }
    }

    /// With a slot held: reuse an idle connection (testing it when due) or open one.
    /// `must_check`: a breaker trial, which must probe or connect to learn an outcome.
    async fn checkout(
        &self,
        start: Instant,
        deadline: Instant,
        must_check: bool,
        retry_connect: bool,
    ) -> Result<Conn<B::Connection>, Error> {
        while let Some(conn) = self.pop_reusable(start) {
            let due = must_check
                || (self.config.test_on_checkout
                    && start.saturating_duration_since(conn.last_used)
                        > self.config.checkout_bypass);
            if !due {
                return Ok(conn);
            }
            let mut pending = self.pending(conn);
            match self.probe_raw(pending.raw(), deadline, start).await {
                Ok(()) => return Ok(pending.keep()),
                Err(e @ (Error::BackendPanic { .. } | Error::Timeout { .. })) => return Err(e),
                Err(_) => continue, // dead connection: `pending` closes it; try the next
            }
        }
        self.connect_with(start, deadline, Phase::Connect, retry_connect)
            .await
    }

    /// Open a connection, retrying with backoff and full jitter until `deadline`.
    pub(super) async fn connect(
        &self,
        start: Instant,
        deadline: Instant,
        phase: Phase,
    ) -> Result<Conn<B::Connection>, Error> {
        self.connect_with(start, deadline, phase, true).await
    }

    /// [`connect`](Self::connect); with `retry` false, the first failed attempt is the
    /// answer.
    async fn connect_with(
        &self,
        start: Instant,
        deadline: Instant,
        phase: Phase,
        retry: bool,
    ) -> Result<Conn<B::Connection>, Error> {
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
        let mut last: Option<BackendError> = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.counters.timed_out();
                return Err(Error::Timeout {
                    key: self.key,
                    phase,
                    elapsed: start.elapsed(),
                    // No attempt of its own got an answer (it waited for a connect permit
                    // or was cut short): the pool's last connect error says why.
                    last_error: last.or_else(|| self.health.last_error()),
                });
            }
            // At most `max_connecting` connects at once: no storm when a server comes back.
            let permit = match timeout_at(deadline, self.connects.acquire()).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(self.closed_error()),
                Err(_) => continue, // the deadline check above reports the timeout
            };
            let now = Instant::now();
            let own_limit = now + self.config.connect_timeout;
            let limit = deadline.min(own_limit);
            let _connecting = self.counters.connecting();
            let attempt = AssertUnwindSafe(self.backend.connect(&self.connection)).catch_unwind();
            let err = match timeout_at(limit, attempt).await {
                Ok(Ok(Ok(raw))) => {
                    self.health.connected();
                    return Ok(self.adopt(raw));
                }
                Ok(Ok(Err(e))) => e,
                Ok(Err(payload)) => return Err(self.crashed(Phase::Connect, &*payload)),
                Err(_) if limit < own_limit => {
                    // The caller's deadline, not the endpoint, ended this attempt: it says
                    // nothing against the server, so the breaker and health don't hear of
                    // it. The timeout reported next carries an earlier attempt's error if
                    // there was one.
                    let waited = limit.saturating_duration_since(now);
                    last.get_or_insert_with(|| {
                        BackendError::new(
                            BackendErrorKind::Timeout,
                            format!("connect attempt cut short by the deadline after {waited:?}"),
                        )
                    });
                    continue; // the deadline check above reports the timeout
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
            tracing::debug!(pool = %self.key, error = %err, "connect failed");
            self.health.connect_failed(&err);
            if !err.is_retryable() {
                self.health.set_healthy(false);
                return Err(Error::Backend {
                    key: self.key,
                    phase,
                    source: err,
                });
            }
            if !retry {
                if Instant::now() < deadline {
                    return Err(Error::Backend {
                        key: self.key,
                        phase,
                        source: err,
                    });
                }
                last = Some(err);
                continue; // the deadline check above reports the timeout
            }
            if self.health.tripped() && Instant::now() < deadline {
                // The breaker opened (perhaps on this very failure): stop hammering the
                // endpoint; the breaker's trials decide when to try again.
                return Err(self.health.circuit_open(Instant::now(), Some(err)));
            }
            last = Some(err);
            let delay = backoff.next_delay(&mut rand::rng());
            tokio::time::sleep_until(deadline.min(Instant::now() + delay)).await;
        }
    }

    /// Account for a freshly opened connection.
    fn adopt(&self, raw: B::Connection) -> Conn<B::Connection> {
        let now = Instant::now();
        self.counters.opened();
        let expires = self.config.max_lifetime.map(|life| {
            let jitter = self.config.lifetime_jitter.as_nanos() as u64;
            let off = if jitter == 0 {
                0
            } else {
                rand::rng().random_range(0..=jitter)
            };
            now + life - Duration::from_nanos(off)
        });
        Conn {
            raw,
            created: now,
            expires,
            last_used: now,
            generation: self.incarnation.generation(),
            checkout: 0,
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
            if conn.outlived(generation, now) || self.backend.is_broken(&mut conn.raw) {
                self.close_conn(conn);
                continue;
            }
            return Some(conn);
        }
    }
}
