//! The state one pool shares between its actor and its handles: idle connections, slots
//! and counters. Acquire and release run here, in the caller's task, without a message hop
//! (see `docs/architecture.md` for the measurements behind that choice). Nothing here
//! knows about actix.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{Notify, Semaphore, TryAcquireError};
use tokio::time::{timeout_at, Instant};

use super::guard::PooledConnection;
use super::home::Home;
use crate::backend::Backend;
use crate::backoff::Backoff;
use crate::breaker::{Change, CircuitBreaker};
use crate::config::connection::ConnectionConfig;
use crate::config::pool::PoolConfig;
use crate::error::{BackendError, BackendErrorKind, Error, Phase};
use crate::key::PoolKey;
use crate::leak::LeakTracker;
use crate::stats::PoolStats;
use std::backtrace::Backtrace;

pub(super) const OPEN: u8 = 0;
pub(super) const CLOSED: u8 = 1;
pub(super) const SHUTTING_DOWN: u8 = 2;
/// Restarted too often: refuses acquires until revived.
pub(super) const FAILED: u8 = 3;

/// A live connection and what the pool knows about it.
pub(crate) struct Conn<C> {
    pub(crate) raw: C,
    pub(crate) created: Instant,
    pub(crate) expires: Option<Instant>,
    pub(crate) last_used: Instant,
    pub(crate) generation: u64,
    /// Leak-tracker id of the current checkout; 0 when leak detection is off.
    pub(crate) checkout: u64,
}

/// Called when backend code panics, with the phase and the panic message.
pub(crate) type CrashHook = Box<dyn Fn(Phase, &str) + Send + Sync>;

/// Called on every circuit-breaker transition.
pub(crate) type EventSink = Arc<dyn Fn(PoolKey, Change) + Send + Sync>;

pub(crate) struct PoolShared<B: Backend> {
    pub(crate) key: PoolKey,
    pub(crate) backend: Arc<B>,
    pub(crate) connection: ConnectionConfig,
    pub(crate) config: PoolConfig,
    pub(super) max_size: AtomicU32,
    pub(super) min_idle: AtomicU32,
    /// One permit per connection that may be checked out or opening.
    pub(super) slots: Semaphore,
    /// Permits to swallow as they come back, after a shrinking resize.
    pub(super) shrink_debt: AtomicUsize,
    /// Idle connections; the most recently returned at the back.
    pub(super) idle: Mutex<VecDeque<Conn<B::Connection>>>,
    pub(super) state: AtomicU8,
    pub(super) generation: AtomicU64,
    pub(super) crash_hook: Mutex<Option<CrashHook>>,
    pub(super) last_error: Mutex<Option<BackendError>>,
    pub(super) returned: Notify,
    /// The pool stopped serving (failed, closed): wakes acquires queued for a slot, which
    /// a failed pool would otherwise leave waiting out their whole acquire timeout.
    pub(super) state_changed: Notify,
    /// Where the pool's own connects run (see `pool/home.rs`).
    pub(crate) home: Arc<Home>,
    pub(super) epoch: Instant,
    pub(super) last_used_ms: AtomicU64,
    pub(super) live: AtomicUsize,
    pub(super) in_use: AtomicUsize,
    pub(super) waiters: AtomicUsize,
    pub(super) connecting: AtomicUsize,
    /// Background opens (warm, refill) not finished yet, so that a refill does not start
    /// another batch while the last one is still connecting.
    pub(super) warming: AtomicUsize,
    pub(super) created: AtomicU64,
    pub(super) closed: AtomicU64,
    pub(super) served: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) connect_errors: AtomicU64,
    pub(super) panics: AtomicU64,
    pub(super) restarts: AtomicU64,
    pub(super) healthy: AtomicBool,
    pub(super) breaker: Mutex<CircuitBreaker>,
    /// Mirrors `breaker.state() != Closed`, so a closed breaker costs one load.
    pub(super) breaker_tripped: AtomicBool,
    pub(super) events: Option<EventSink>,
    /// Bounds connects in progress (acquires and refills together).
    pub(super) connects: Semaphore,
    /// Present only when leak detection is on.
    pub(super) leaks: Option<Mutex<LeakTracker>>,
    pub(super) leaks_reported: AtomicU64,
    pub(super) leaks_reclaimed: AtomicU64,
    pub(super) probing: AtomicBool,
    pub(super) restart_log: Mutex<VecDeque<Instant>>,
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Returns a slot to the pool when dropped, so no exit path (error, timeout, a dropped
/// future) can leak one.
pub(crate) struct Slot<'a, B: Backend> {
    pub(super) pool: &'a PoolShared<B>,
}

impl<B: Backend> Slot<'_, B> {
    /// Keep the slot past this scope: the guard now owns it.
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl<B: Backend> Drop for Slot<'_, B> {
    fn drop(&mut self) {
        self.pool.release_slot();
    }
}

/// Closes a connection being checked out if the acquire is abandoned (timeout, drop).
pub(super) struct Pending<'a, B: Backend> {
    pub(super) pool: &'a PoolShared<B>,
    pub(super) conn: Option<Conn<B::Connection>>,
}

impl<B: Backend> Drop for Pending<'_, B> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.close_conn(c);
        }
    }
}

pub(super) struct WaiterCount<'a>(pub(super) &'a AtomicUsize);

impl Drop for WaiterCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<B: Backend> PoolShared<B> {
    pub(crate) fn new(
        key: PoolKey,
        backend: Arc<B>,
        connection: ConnectionConfig,
        config: PoolConfig,
        events: Option<EventSink>,
        home: Arc<Home>,
    ) -> Self {
        let now = Instant::now();
        Self {
            home,
            breaker: Mutex::new(CircuitBreaker::new(config.breaker.clone(), now)),
            breaker_tripped: AtomicBool::new(false),
            events,
            connects: Semaphore::new(config.max_connecting as usize),
            leaks: config
                .leak_threshold
                .map(|t| Mutex::new(LeakTracker::new(t, config.leak_reclaim_after))),
            leaks_reported: AtomicU64::new(0),
            leaks_reclaimed: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            restart_log: Mutex::new(VecDeque::new()),
            key,
            backend,
            connection,
            max_size: AtomicU32::new(config.max_size),
            min_idle: AtomicU32::new(config.min_idle),
            slots: Semaphore::new(config.capacity()),
            shrink_debt: AtomicUsize::new(0),
            idle: Mutex::new(VecDeque::with_capacity(config.max_size as usize)),
            config,
            state: AtomicU8::new(OPEN),
            generation: AtomicU64::new(0),
            crash_hook: Mutex::new(None),
            last_error: Mutex::new(None),
            returned: Notify::new(),
            state_changed: Notify::new(),
            epoch: now,
            last_used_ms: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            connecting: AtomicUsize::new(0),
            warming: AtomicUsize::new(0),
            created: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            served: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
        }
    }

    // ----- acquire -------------------------------------------------------------------

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
        let mut trial = self.admit(start)?;
        let slot = match self.slots.try_acquire() {
            Ok(p) => {
                p.forget();
                Slot { pool: self }
            }
            Err(TryAcquireError::Closed) => return Err(self.closed_error()),
            Err(TryAcquireError::NoPermits) => {
                let slot = self.wait_for_slot(start, budget).await?;
                // The breaker may have opened while we queued: a waiter woken then must
                // not make one more connect to a dead endpoint (the slot frees on `?`).
                if trial.is_none() {
                    trial = self.admit(Instant::now())?;
                }
                slot
            }
        };
        // The pool may have failed or closed while we waited.
        self.check_open()?;
        self.touch(start);
        let deadline = start + budget;
        let mut conn = self
            .checkout(start, deadline, trial.is_some(), retry_connect)
            .await?;
        // A trial's checkout probed or connected, so its outcome is already reported.
        if let Some(t) = trial {
            t.resolved();
        }
        if let Some(leaks) = &self.leaks {
            let backtrace = self.config.leak_backtrace.then(Backtrace::force_capture);
            // Held from now: time spent queueing or connecting is not time spent holding
            // (timed from `start`, a waiter could be reported, even reclaimed, at once).
            conn.checkout = leaks.lock().checkout(Instant::now(), backtrace);
        }
        slot.disarm();
        self.in_use.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        Ok(PooledConnection::new(Arc::clone(self), conn))
    }

    async fn wait_for_slot(&self, start: Instant, budget: Duration) -> Result<Slot<'_, B>, Error> {
        let queued = self.waiters.fetch_add(1, Ordering::Relaxed);
        let _count = WaiterCount(&self.waiters);
        if queued >= self.config.max_waiters {
            return Err(Error::PoolSaturated {
                key: self.key,
                waiters: queued,
            });
        }
        let wait = async {
            let mut acquire = std::pin::pin!(self.slots.acquire());
            loop {
                // Registered before the state is read, so a change in between is not missed.
                let mut changed = std::pin::pin!(self.state_changed.notified());
                changed.as_mut().enable();
                if self.state.load(Ordering::Acquire) != OPEN {
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
            Ok(Some(Ok(p))) => {
                p.forget();
                Ok(Slot { pool: self })
            }
            Ok(Some(Err(_)) | None) => Err(self.closed_error()),
            Err(_) => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(Error::Timeout {
                    key: self.key,
                    phase: Phase::Wait,
                    elapsed: start.elapsed(),
                    last_error: self.last_error.lock().clone(),
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
            let mut pending = Pending {
                pool: self,
                conn: Some(conn),
            };
            let raw = &mut pending.conn.as_mut().expect("set above").raw;
            match self.probe_raw(raw, deadline, start).await {
                Ok(()) => return Ok(pending.conn.take().expect("set above")),
                Err(e @ (Error::BackendPanic { .. } | Error::Timeout { .. })) => return Err(e),
                Err(_) => continue, // dead connection: `pending` closes it; try the next
            }
        }
        self.connect_with(start, deadline, Phase::Connect, retry_connect)
            .await
    }

    /// Probe one connection with the probe timeout, never past `deadline`.
    pub(super) async fn probe_raw(
        &self,
        raw: &mut B::Connection,
        deadline: Instant,
        start: Instant,
    ) -> Result<(), Error> {
        let limit = deadline.min(Instant::now() + self.config.probe_timeout);
        match timeout_at(
            limit,
            AssertUnwindSafe(self.backend.probe(raw)).catch_unwind(),
        )
        .await
        {
            Ok(Ok(Ok(()))) => {
                self.report_success();
                Ok(())
            }
            Ok(Ok(Err(e))) => {
                self.report_failure(&e);
                Err(Error::Backend {
                    key: self.key,
                    phase: Phase::Probe,
                    source: e,
                })
            }
            Ok(Err(payload)) => Err(self.crashed(Phase::Probe, &*payload)),
            Err(_) => {
                let e = BackendError::new(
                    BackendErrorKind::Timeout,
                    format!("probe timed out after {:?}", self.config.probe_timeout),
                );
                self.report_failure(&e);
                if limit == deadline {
                    Err(Error::Timeout {
                        key: self.key,
                        phase: Phase::Probe,
                        elapsed: start.elapsed(),
                        last_error: Some(e),
                    })
                } else {
                    Err(Error::Backend {
                        key: self.key,
                        phase: Phase::Probe,
                        source: e,
                    })
                }
            }
        }
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
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(Error::Timeout {
                    key: self.key,
                    phase,
                    elapsed: start.elapsed(),
                    last_error: last,
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
            self.connecting.fetch_add(1, Ordering::Relaxed);
            let _connecting = WaiterCount(&self.connecting);
            let attempt = AssertUnwindSafe(self.backend.connect(&self.connection)).catch_unwind();
            let err = match timeout_at(limit, attempt).await {
                Ok(Ok(Ok(raw))) => {
                    *self.last_error.lock() = None;
                    self.healthy.store(true, Ordering::Relaxed);
                    self.report_success();
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
            self.connect_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(pool = %self.key, error = %err, "connect failed");
            *self.last_error.lock() = Some(err.clone());
            self.report_failure(&err);
            if !err.is_retryable() {
                self.healthy.store(false, Ordering::Relaxed);
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
            if self.breaker_tripped.load(Ordering::Acquire) && Instant::now() < deadline {
                // The breaker opened (perhaps on this very failure): stop hammering the
                // endpoint; the breaker's trials decide when to try again.
                return Err(self.circuit_open(Instant::now(), Some(err)));
            }
            last = Some(err);
            let delay = backoff.next_delay(&mut rand::rng());
            tokio::time::sleep_until(deadline.min(Instant::now() + delay)).await;
        }
    }

    /// Account for a freshly opened connection.
    fn adopt(&self, raw: B::Connection) -> Conn<B::Connection> {
        let now = Instant::now();
        self.live.fetch_add(1, Ordering::Relaxed);
        self.created.fetch_add(1, Ordering::Relaxed);
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
            generation: self.generation.load(Ordering::Relaxed),
            checkout: 0,
        }
    }

    pub(super) fn crashed(&self, phase: Phase, payload: &(dyn std::any::Any + Send)) -> Error {
        let message = panic_message(payload);
        self.panics.fetch_add(1, Ordering::Relaxed);
        tracing::error!(pool = %self.key, %phase, panic = %message, "backend panicked; restarting pool actor");
        if let Some(hook) = self.crash_hook.lock().as_ref() {
            hook(phase, &message);
        }
        Error::BackendPanic {
            key: self.key,
            phase,
            message,
        }
    }

    // ----- release -------------------------------------------------------------------

    /// Take back a connection from a guard. Synchronous unless the backend must reset it.
    pub(crate) fn release(self: &Arc<Self>, mut conn: Conn<B::Connection>, broken: bool) {
        let now = Instant::now();
        if conn.checkout != 0 && !self.checked_in(conn.checkout, now) {
            // Reclaimed as a leak: its slot is long free; only the connection remains.
            self.close_conn(conn);
            return;
        }
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        let died = self.backend.is_broken(&mut conn.raw);
        if died {
            self.report_failure(&BackendError::new(
                BackendErrorKind::Closed,
                "connection broke while checked out",
            ));
        }
        let keep = !broken
            && !died
            && self.state.load(Ordering::Relaxed) == OPEN
            && conn.generation == self.generation.load(Ordering::Relaxed)
            && conn.expires.is_none_or(|e| e > now)
            // Overflow connections are closed on return, unless someone is waiting: then
            // handing them over beats closing one and opening another (the reaper closes
            // the surplus once the queue is empty).
            && (self.live.load(Ordering::Relaxed) <= self.max_size.load(Ordering::Relaxed) as usize
                || self.waiters.load(Ordering::Relaxed) > 0)
            && self.shrink_debt.load(Ordering::Relaxed) == 0;
        if !keep {
            self.close_conn(conn);
            self.release_slot();
            return;
        }
        let reset = self.config.reset_on_return && self.backend.needs_reset(&conn.raw);
        if reset || self.config.test_on_return {
            // The slot stays taken until the connection is clean, so nobody gets it dirty.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let pool = Arc::clone(self);
                    rt.spawn(async move { pool.clean_and_return(conn, reset).await });
                }
                Err(_) => {
                    self.close_conn(conn);
                    self.release_slot();
                }
            }
            return;
        }
        conn.last_used = now;
        self.idle.lock().push_back(conn);
        self.release_slot();
    }

    async fn clean_and_return(self: Arc<Self>, conn: Conn<B::Connection>, reset: bool) {
        let mut pending = Pending {
            pool: &self,
            conn: Some(conn),
        };
        let start = Instant::now();
        let deadline = start + self.config.probe_timeout;
        let raw = &mut pending.conn.as_mut().expect("set above").raw;
        let ok = if reset {
            match timeout_at(
                deadline,
                AssertUnwindSafe(self.backend.reset(raw)).catch_unwind(),
            )
            .await
            {
                Ok(Ok(Ok(()))) => true,
                Ok(Ok(Err(e))) => {
                    tracing::debug!(pool = %self.key, error = %e, "reset failed; closing connection");
                    false
                }
                Ok(Err(payload)) => {
                    self.crashed(Phase::Reset, &*payload);
                    false
                }
                Err(_) => false,
            }
        } else {
            true
        };
        let ok = ok
            && (!self.config.test_on_return || self.probe_raw(raw, deadline, start).await.is_ok());
        if ok && self.state.load(Ordering::Relaxed) == OPEN {
            let mut conn = pending.conn.take().expect("set above");
            conn.last_used = Instant::now();
            self.idle.lock().push_back(conn);
        }
        drop(pending);
        self.release_slot();
    }

    pub(crate) fn release_slot(&self) {
        let mut debt = self.shrink_debt.load(Ordering::Relaxed);
        while debt > 0 {
            match self.shrink_debt.compare_exchange_weak(
                debt,
                debt - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.returned.notify_waiters(),
                Err(d) => debt = d,
            }
        }
        self.slots.add_permits(1);
        if self.state.load(Ordering::Relaxed) != OPEN {
            self.returned.notify_waiters();
        }
    }

    pub(super) fn check_open(&self) -> Result<(), Error> {
        match self.state.load(Ordering::Relaxed) {
            OPEN => Ok(()),
            _ => Err(self.closed_error()),
        }
    }

    pub(super) fn closed_error(&self) -> Error {
        match self.state.load(Ordering::Relaxed) {
            SHUTTING_DOWN => Error::ShuttingDown,
            FAILED => Error::PoolFailed {
                key: self.key,
                restarts: self.restarts.load(Ordering::Relaxed),
            },
            _ => Error::PoolClosed { key: self.key },
        }
    }

    fn touch(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.last_used_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn close_conn(&self, conn: Conn<B::Connection>) {
        drop(conn);
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            key: self.key,
            backend: self.connection.backend.clone(),
            idle: self.idle.lock().len(),
            in_use: self.in_use.load(Ordering::Relaxed),
            live: self.live.load(Ordering::Relaxed),
            connecting: self.connecting.load(Ordering::Relaxed),
            waiters: self.waiters.load(Ordering::Relaxed),
            max_size: self.max_size.load(Ordering::Relaxed),
            min_idle: self.min_idle.load(Ordering::Relaxed),
            max_overflow: self.config.max_overflow,
            created: self.created.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            served: self.served.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            connect_errors: self.connect_errors.load(Ordering::Relaxed),
            panics: self.panics.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            generation: self.generation.load(Ordering::Relaxed),
            closed_pool: self.is_closed(),
            failed: self.state.load(Ordering::Relaxed) == FAILED,
            breaker: self.breaker.lock().state(),
            leaks_reported: self.leaks_reported.load(Ordering::Relaxed),
            leaks_reclaimed: self.leaks_reclaimed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }
}

impl Error {
    /// The backend error behind this one, if any (the last one, for a timeout or an open
    /// breaker).
    pub(crate) fn source_backend(&self) -> Option<&BackendError> {
        match self {
            Error::Backend { source, .. } => Some(source),
            Error::Timeout { last_error, .. } | Error::CircuitOpen { last_error, .. } => {
                last_error.as_ref()
            }
            _ => None,
        }
    }
}
