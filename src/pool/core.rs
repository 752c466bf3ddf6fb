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
use crate::backend::Backend;
use crate::backoff::Backoff;
use crate::config::connection::ConnectionConfig;
use crate::config::pool::PoolConfig;
use crate::error::{BackendError, BackendErrorKind, Error, Phase};
use crate::key::PoolKey;
use crate::stats::PoolStats;

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const SHUTTING_DOWN: u8 = 2;

/// A live connection and what the pool knows about it.
pub(crate) struct Conn<C> {
    pub(crate) raw: C,
    pub(crate) created: Instant,
    pub(crate) expires: Option<Instant>,
    pub(crate) last_used: Instant,
    pub(crate) generation: u64,
}

/// Called when backend code panics, with the phase and the panic message.
pub(crate) type CrashHook = Box<dyn Fn(Phase, &str) + Send + Sync>;

pub(crate) struct PoolShared<B: Backend> {
    pub(crate) key: PoolKey,
    pub(crate) backend: Arc<B>,
    pub(crate) connection: ConnectionConfig,
    pub(crate) config: PoolConfig,
    max_size: AtomicU32,
    min_idle: AtomicU32,
    /// One permit per connection that may be checked out or opening.
    slots: Semaphore,
    /// Permits to swallow as they come back, after a shrinking resize.
    shrink_debt: AtomicUsize,
    /// Idle connections; the most recently returned at the back.
    idle: Mutex<VecDeque<Conn<B::Connection>>>,
    state: AtomicU8,
    generation: AtomicU64,
    crash_hook: Mutex<Option<CrashHook>>,
    last_error: Mutex<Option<BackendError>>,
    returned: Notify,
    epoch: Instant,
    last_used_ms: AtomicU64,
    live: AtomicUsize,
    in_use: AtomicUsize,
    waiters: AtomicUsize,
    connecting: AtomicUsize,
    created: AtomicU64,
    closed: AtomicU64,
    served: AtomicU64,
    timeouts: AtomicU64,
    connect_errors: AtomicU64,
    panics: AtomicU64,
    restarts: AtomicU64,
    healthy: AtomicBool,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Returns a slot to the pool when dropped, so no exit path (error, timeout, a dropped
/// future) can leak one.
pub(crate) struct Slot<'a, B: Backend> {
    pool: &'a PoolShared<B>,
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
struct Pending<'a, B: Backend> {
    pool: &'a PoolShared<B>,
    conn: Option<Conn<B::Connection>>,
}

impl<B: Backend> Drop for Pending<'_, B> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.close_conn(c);
        }
    }
}

struct WaiterCount<'a>(&'a AtomicUsize);

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
    ) -> Self {
        Self {
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
            epoch: Instant::now(),
            last_used_ms: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            connecting: AtomicUsize::new(0),
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
        let start = Instant::now();
        self.check_open()?;
        let slot = match self.slots.try_acquire() {
            Ok(p) => {
                p.forget();
                Slot { pool: self }
            }
            Err(TryAcquireError::Closed) => return Err(self.closed_error()),
            Err(TryAcquireError::NoPermits) => self.wait_for_slot(start, budget).await?,
        };
        self.touch(start);
        let deadline = start + budget;
        let conn = self.checkout(start, deadline).await?;
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
        match timeout_at(start + budget, self.slots.acquire()).await {
            Ok(Ok(p)) => {
                p.forget();
                Ok(Slot { pool: self })
            }
            Ok(Err(_)) => Err(self.closed_error()),
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
    async fn checkout(
        &self,
        start: Instant,
        deadline: Instant,
    ) -> Result<Conn<B::Connection>, Error> {
        let generation = self.generation.load(Ordering::Relaxed);
        loop {
            let next = self.idle.lock().pop_back();
            let Some(conn) = next else { break };
            if conn.generation != generation
                || conn.expires.is_some_and(|e| e <= start)
                || self.backend.is_broken(&conn.raw)
            {
                self.close_conn(conn);
                continue;
            }
            let due = self.config.test_on_checkout
                && start.saturating_duration_since(conn.last_used) > self.config.checkout_bypass;
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
        self.connect(start, deadline, Phase::Connect).await
    }

    /// Probe one connection with the probe timeout, never past `deadline`.
    async fn probe_raw(
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
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(Error::Backend {
                key: self.key,
                phase: Phase::Probe,
                source: e,
            }),
            Ok(Err(payload)) => Err(self.crashed(Phase::Probe, &*payload)),
            Err(_) if limit == deadline => Err(Error::Timeout {
                key: self.key,
                phase: Phase::Probe,
                elapsed: start.elapsed(),
                last_error: None,
            }),
            Err(_) => Err(Error::Backend {
                key: self.key,
                phase: Phase::Probe,
                source: BackendError::new(
                    BackendErrorKind::Timeout,
                    format!("probe timed out after {:?}", self.config.probe_timeout),
                ),
            }),
        }
    }

    /// Open a connection, retrying with backoff and full jitter until `deadline`.
    async fn connect(
        &self,
        start: Instant,
        deadline: Instant,
        phase: Phase,
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
            let limit = deadline.min(now + self.config.connect_timeout);
            self.connecting.fetch_add(1, Ordering::Relaxed);
            let _connecting = WaiterCount(&self.connecting);
            let attempt = AssertUnwindSafe(self.backend.connect(&self.connection)).catch_unwind();
            let err = match timeout_at(limit, attempt).await {
                Ok(Ok(Ok(raw))) => {
                    *self.last_error.lock() = None;
                    self.healthy.store(true, Ordering::Relaxed);
                    return Ok(self.adopt(raw));
                }
                Ok(Ok(Err(e))) => e,
                Ok(Err(payload)) => return Err(self.crashed(Phase::Connect, &*payload)),
                Err(_) => BackendError::new(
                    BackendErrorKind::Timeout,
                    format!(
                        "connect attempt timed out after {:?}",
                        self.config.connect_timeout
                    ),
                ),
            };
            self.connect_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(pool = %self.key, error = %err, "connect failed");
            *self.last_error.lock() = Some(err.clone());
            if !err.is_retryable() {
                self.healthy.store(false, Ordering::Relaxed);
                return Err(Error::Backend {
                    key: self.key,
                    phase,
                    source: err,
                });
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
        }
    }

    fn crashed(&self, phase: Phase, payload: &(dyn std::any::Any + Send)) -> Error {
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
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        let now = Instant::now();
        let keep = !broken
            && self.state.load(Ordering::Relaxed) == OPEN
            && conn.generation == self.generation.load(Ordering::Relaxed)
            && conn.expires.is_none_or(|e| e > now)
            && self.live.load(Ordering::Relaxed) <= self.max_size.load(Ordering::Relaxed) as usize
            && self.shrink_debt.load(Ordering::Relaxed) == 0
            && !self.backend.is_broken(&conn.raw);
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

    pub(crate) fn close_conn(&self, conn: Conn<B::Connection>) {
        drop(conn);
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    // ----- lifecycle (driven by the pool actor) ------------------------------------

    fn check_open(&self) -> Result<(), Error> {
        match self.state.load(Ordering::Relaxed) {
            OPEN => Ok(()),
            _ => Err(self.closed_error()),
        }
    }

    fn closed_error(&self) -> Error {
        match self.state.load(Ordering::Relaxed) {
            SHUTTING_DOWN => Error::ShuttingDown,
            _ => Error::PoolClosed { key: self.key },
        }
    }

    fn touch(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.last_used_ms.store(ms, Ordering::Relaxed);
    }

    /// When an acquire last started on this pool.
    pub(crate) fn last_used(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_used_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn set_crash_hook(&self, hook: Option<CrashHook>) {
        *self.crash_hook.lock() = hook;
    }

    /// A new actor incarnation: connections of earlier ones are closed, idle now or when
    /// they come back.
    pub(crate) fn new_generation(&self) -> u64 {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let g = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.drain_idle();
        g
    }

    /// Stop serving: waiters and new acquires get `PoolClosed` (or `ShuttingDown`).
    pub(crate) fn close(&self, shutting_down: bool) -> usize {
        let state = if shutting_down { SHUTTING_DOWN } else { CLOSED };
        // The first reason wins: a shutdown is not downgraded to a plain close.
        let _ = self
            .state
            .compare_exchange(OPEN, state, Ordering::AcqRel, Ordering::Relaxed);
        self.slots.close();
        let drained = self.drain_idle();
        self.returned.notify_waiters();
        drained
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Relaxed) != OPEN
    }

    /// Close every idle connection; returns how many.
    pub(crate) fn drain_idle(&self) -> usize {
        let drained: Vec<_> = self.idle.lock().drain(..).collect();
        let n = drained.len();
        drained.into_iter().for_each(|c| self.close_conn(c));
        n
    }

    /// Wait until nothing is checked out, or `deadline`. Returns what is still out.
    pub(crate) async fn wait_returned(&self, deadline: Instant) -> usize {
        loop {
            let notified = self.returned.notified();
            let out = self.in_use.load(Ordering::Relaxed);
            if out == 0 || timeout_at(deadline, notified).await.is_err() {
                return self.in_use.load(Ordering::Relaxed);
            }
        }
    }

    /// Close expired, stale and idle-timed-out connections (keeping `min_idle`). Returns
    /// how many were closed.
    pub(crate) fn reap(&self) -> usize {
        let now = Instant::now();
        let generation = self.generation.load(Ordering::Relaxed);
        let min_idle = self.min_idle.load(Ordering::Relaxed) as usize;
        let max_size = self.max_size.load(Ordering::Relaxed) as usize;
        let mut doomed = Vec::new();
        {
            let mut idle = self.idle.lock();
            let mut i = 0;
            while i < idle.len() {
                let c = &idle[i];
                let stale = c.generation != generation
                    || c.expires.is_some_and(|e| e <= now)
                    || self.backend.is_broken(&c.raw);
                // The front holds the longest idle; only trim above min_idle (and max_size).
                let surplus = idle.len() > max_size
                    || (idle.len() > min_idle
                        && self
                            .config
                            .idle_timeout
                            .is_some_and(|t| now.saturating_duration_since(c.last_used) >= t));
                if stale || surplus {
                    doomed.extend(idle.remove(i));
                } else {
                    i += 1;
                }
            }
        }
        let n = doomed.len();
        doomed.into_iter().for_each(|c| self.close_conn(c));
        n
    }

    /// Open connections until `target` are idle, using only free slots (never taking one
    /// a waiter needs). Returns how many were opened.
    pub(crate) async fn warm(&self, target: usize) -> usize {
        let target = target.min(self.max_size.load(Ordering::Relaxed) as usize);
        let missing = target.saturating_sub(self.idle.lock().len());
        let opens = (0..missing).map(|_| self.open_one());
        futures::future::join_all(opens)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    async fn open_one(&self) -> bool {
        if self.is_closed() {
            return false;
        }
        let Ok(p) = self.slots.try_acquire() else {
            return false;
        };
        p.forget();
        let slot = Slot { pool: self };
        let start = Instant::now();
        let deadline = start + self.config.connect_timeout;
        let ok = match self.connect(start, deadline, Phase::Connect).await {
            Ok(c) => {
                self.idle.lock().push_back(c);
                true
            }
            Err(e) => {
                tracing::debug!(pool = %self.key, error = %e, "background connect failed");
                false
            }
        };
        drop(slot);
        ok
    }

    /// Top up to `min_idle` (what the maintenance tick calls).
    pub(crate) async fn refill(&self) -> usize {
        self.warm(self.min_idle.load(Ordering::Relaxed) as usize)
            .await
    }

    /// Change the sizes at run time. Shrinking closes idle surplus now and checked-out
    /// surplus as it comes back.
    pub(crate) fn resize(&self, max_size: u32, min_idle: u32) {
        let overflow = self.config.max_overflow as usize;
        let old = self.max_size.swap(max_size, Ordering::AcqRel) as usize + overflow;
        self.min_idle.store(min_idle, Ordering::Relaxed);
        let new = max_size as usize + overflow;
        if new > old {
            let mut grow = new - old;
            // First cancel pending shrinkage.
            while grow > 0 {
                let debt = self.shrink_debt.load(Ordering::Acquire);
                if debt == 0 {
                    break;
                }
                let pay = debt.min(grow);
                if self
                    .shrink_debt
                    .compare_exchange(debt, debt - pay, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    grow -= pay;
                }
            }
            self.slots.add_permits(grow);
        } else if new < old {
            let shrink = old - new;
            let forgotten = self.slots.forget_permits(shrink);
            self.shrink_debt
                .fetch_add(shrink - forgotten, Ordering::AcqRel);
            self.reap();
        }
    }

    /// Probe the endpoint: an idle connection if there is one, else a fresh one if a slot is
    /// free; a pool whose slots are all busy is judged by its last connect.
    pub(crate) async fn probe(&self, budget: Duration) -> Result<(), String> {
        if self.is_closed() {
            return Err("pool is closed".into());
        }
        let start = Instant::now();
        let deadline = start + budget;
        let next = self.idle.lock().pop_back();
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
        } else if self.warm(1).await == 1 {
            Ok(())
        } else if self.slots.available_permits() == 0 {
            return self.judge_by_history();
        } else {
            Err(Error::Backend {
                key: self.key,
                phase: Phase::Connect,
                source: self.last_error.lock().clone().unwrap_or_else(|| {
                    BackendError::new(BackendErrorKind::Connect, "connect failed")
                }),
            })
        };
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        result.map_err(|e| match e.source_backend() {
            Some(b) => format!("{e}: {b}"),
            None => e.to_string(),
        })
    }

    fn judge_by_history(&self) -> Result<(), String> {
        match (
            self.healthy.load(Ordering::Relaxed),
            self.last_error.lock().as_ref(),
        ) {
            (false, Some(e)) => Err(e.to_string()),
            _ => Ok(()),
        }
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
        }
    }

    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }
}

impl Error {
    fn source_backend(&self) -> Option<&BackendError> {
        match self {
            Error::Backend { source, .. } => Some(source),
            Error::Timeout { last_error, .. } => last_error.as_ref(),
            _ => None,
        }
    }
}
