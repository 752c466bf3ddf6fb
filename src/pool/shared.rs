//! The state one pool shares between its actor and its handles, composed of parts that
//! each own their fields (`hot.rs`, `slots.rs`, `idle.rs`, `counters.rs`, `health.rs`,
//! `leaks.rs`, `incarnation.rs`, `capacity.rs`, `credential.rs`, `hooks.rs`, `pause.rs`,
//! `budget.rs`, `connect_gate.rs`). Acquire and release run on it in the caller's task,
//! without a message hop (see `docs/architecture.md` for the measurements behind that);
//! the jobs done on it are one file each: `checkout.rs`, `connect.rs`, `checkin.rs`, `probe.rs`,
//! `lifecycle.rs`, `stats.rs`. Nothing here knows about actix.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use tokio::time::Instant;

use super::capacity::Capacity;
use super::config::PoolConfig;
use super::conn::Conn;
use super::connect_gate::ConnectGate;
use super::counters::Counters;
use super::credential::{Credential, CredentialsProvider};
use super::health::{EventSink, Health};
use super::home::Home;
use super::hooks::Hooks;
use super::hot::{Hot, PoolState};
use super::idle::Idle;
use super::incarnation::Incarnation;
use super::leaks::Leaks;
use super::pause::Pause;
use super::slots::{Slots, Taken};
use crate::backends::Backend;
use crate::budget::PoolBudget;
use crate::connection::ConnectionConfig;
use crate::error::{Error, Phase};
use crate::key::PoolKey;
use crate::observe::pool::PoolObserver;
use crate::observe::reason::CloseReason;

pub(crate) struct PoolShared<B: Backend> {
    pub(crate) key: PoolKey,
    pub(crate) backend: Arc<B>,
    /// The config the pool was created with: what its key covers (which never changes)
    /// and the password it started with. Connects use `credential`, which rotation
    /// replaces.
    pub(crate) connection: ConnectionConfig,
    /// The password (or provider) connects use now, and its versions.
    pub(super) credential: Credential,
    pub(crate) config: PoolConfig,
    /// Where the pool's own connects run (see `home.rs`).
    pub(crate) home: Arc<Home>,
    pub(crate) hot: Hot,
    pub(crate) slots: Slots,
    pub(crate) idle: Idle<B::Connection>,
    /// In an `Arc`: a connection closed after its `before_close` hook, in a task of its
    /// own, is counted closed from there.
    pub(super) counters: Arc<Counters>,
    pub(super) health: Health,
    pub(super) leaks: Leaks,
    pub(super) incarnation: Incarnation,
    pub(super) capacity: Capacity,
    /// Bounds connects in progress (acquires and refills together), slow start after
    /// failures.
    pub(super) connects: ConnectGate,
    /// The pool's hooks, fixed when it is created (none by default).
    pub(super) hooks: Hooks<B::Connection>,
    /// Paused acquires queue here (`pause.rs`, `controls.rs`).
    pub(super) pause: Pause,
    /// Its share of the supervisor's connection budget (`budget.rs`); `None` without one:
    /// connects then check nothing more than this.
    pub(super) budget: Option<PoolBudget>,
    /// What the pool records for metrics and stats (`crate::observe`): label, windows,
    /// close reasons, metric handles.
    pub(crate) observe: Arc<PoolObserver>,
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
    pool: &'a PoolShared<B>,
}

impl<B: Backend> Slot<'_, B> {
    /// Keep the slot past this scope: the guard now owns it.
    pub(super) fn disarm(self) {
        std::mem::forget(self);
    }
}

impl<B: Backend> Drop for Slot<'_, B> {
    fn drop(&mut self) {
        self.pool.release_slot();
    }
}

/// Closes a connection being checked out, probed or reset if that is abandoned
/// (timeout, drop); [`keep`](Pending::keep) takes it back out.
pub(super) struct Pending<'a, B: Backend> {
    pool: &'a PoolShared<B>,
    conn: Option<Conn<B::Connection>>,
}

impl<B: Backend> Pending<'_, B> {
    pub(super) fn raw(&mut self) -> &mut B::Connection {
        &mut self.conn.as_mut().expect("present until kept").raw
    }

    pub(super) fn keep(mut self) -> Conn<B::Connection> {
        self.conn.take().expect("present until kept")
    }
}

impl<B: Backend> Drop for Pending<'_, B> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            // A probe or hook failed, or the checkout was abandoned.
            self.pool.close_conn(c, CloseReason::Broken);
        }
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
        provider: Option<Arc<dyn CredentialsProvider>>,
    ) -> Self {
        let now = Instant::now();
        let observe = Arc::new(PoolObserver::new(key, None));
        Self {
            credential: Credential::new(connection.clone(), provider),
            home,
            hot: Hot::new(now),
            slots: Slots::new(config.max_size, config.min_idle, config.max_overflow),
            idle: Idle::new(),
            counters: Arc::default(),
            health: Health::new(
                key,
                config.breaker.clone(),
                events,
                now,
                Arc::clone(&observe),
            ),
            leaks: Leaks::new(
                key,
                config.leak_threshold,
                config.leak_reclaim_after,
                config.leak_backtrace,
            ),
            incarnation: Incarnation::default(),
            capacity: Capacity::new(key),
            connects: ConnectGate::new(config.max_connecting),
            hooks: Hooks::default(),
            pause: Pause::new(),
            budget: None,
            observe,
            key,
            backend,
            connection,
            config,
        }
    }

    /// Labelled `name` in metrics and traces (a registered name) instead of by its key
    /// (before it is shared).
    pub(crate) fn with_name(mut self, name: Option<&str>) -> Self {
        if name.is_some() {
            self.observe = Arc::new(PoolObserver::new(self.key, name));
            self.health.observe = Arc::clone(&self.observe);
        }
        self
    }

    /// With `hooks` (before it is shared: a pool's hooks never change).
    pub(crate) fn with_hooks(mut self, hooks: Hooks<B::Connection>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Under the supervisor's connection `budget` (before it is shared; bound as an idle
    /// source by [`bind_budget`](Self::bind_budget) once it is).
    pub(crate) fn with_budget(mut self, budget: Option<PoolBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// The acquire must take the slow path: the pool is paused (or acquires still queue
    /// from a pause), or a `before_acquire` hook must see the connection. One atomic load
    /// and one pointer check when neither: no allocation, no await.
    #[inline]
    pub(super) fn gated(&self) -> bool {
        self.hooks.before_acquire.is_some() || self.pause.gated()
    }

    /// Take a free slot without waiting, held by the returned guard.
    #[inline]
    pub(super) fn try_slot(&self) -> Result<Slot<'_, B>, tokio::sync::TryAcquireError> {
        self.slots.try_take().map(|()| Slot { pool: self })
    }

    /// Wait for a slot (FIFO), held by the returned guard; `None` when a failure woke
    /// this waiter instead (look at the state).
    pub(super) async fn slot(&self) -> Result<Option<Slot<'_, B>>, tokio::sync::AcquireError> {
        Ok(match self.slots.take().await? {
            Taken::Slot => Some(Slot { pool: self }),
            Taken::Woken => None,
        })
    }

    /// Hold `conn` so that it is closed if what comes next is abandoned.
    pub(super) fn pending(&self, conn: Conn<B::Connection>) -> Pending<'_, B> {
        Pending {
            pool: self,
            conn: Some(conn),
        }
    }

    pub(crate) fn release_slot(&self) {
        self.slots.give_back(self.hot.is_open());
    }

    #[inline]
    pub(super) fn check_open(&self) -> Result<(), Error> {
        if self.hot.is_open() {
            Ok(())
        } else {
            Err(self.closed_error())
        }
    }

    pub(super) fn closed_error(&self) -> Error {
        match self.hot.state() {
            PoolState::ShuttingDown => Error::ShuttingDown,
            PoolState::Failed => Error::PoolFailed {
                key: self.key,
                restarts: self.counters.restarts(),
            },
            _ => Error::PoolClosed { key: self.key },
        }
    }

    /// Why a connection that `outlived` its pool is closed: its lifetime ran out, or it
    /// belongs to an earlier generation (a restart, a soft eviction, a replaced credential).
    pub(super) fn outlived_reason(&self, conn: &Conn<B::Connection>) -> CloseReason {
        if conn.generation != self.incarnation.generation() || conn.credential.retired() {
            CloseReason::StaleGeneration
        } else {
            CloseReason::MaxLifetime
        }
    }

    /// Backend code panicked: count it, tell the actor (which stops and is restarted) and
    /// answer the caller's error.
    pub(super) fn crashed(&self, phase: Phase, payload: &(dyn std::any::Any + Send)) -> Error {
        let message = panic_message(payload);
        self.counters.panicked();
        tracing::error!(pool = %self.key, %phase, panic = %message, "backend panicked; restarting pool actor");
        self.incarnation.crashed(phase, &message);
        Error::BackendPanic {
            key: self.key,
            phase,
            message,
        }
    }

    /// [`Backend::is_broken`] with its panic caught, as every call into backend code is:
    /// a connection whose check panicked counts as broken (closed, never handed out).
    /// (Uncaught, the panic would unwind out of a guard's drop or a reap with the
    /// connection's slot and count still taken.)
    #[inline]
    pub(super) fn conn_is_broken(&self, raw: &mut B::Connection) -> bool {
        self.check(Phase::Probe, || self.backend.is_broken(raw))
    }

    /// [`Backend::needs_reset`] with its panic caught: a connection whose check panicked
    /// is reset (a reset that fails closes it).
    #[inline]
    pub(super) fn conn_needs_reset(&self, raw: &B::Connection) -> bool {
        self.check(Phase::Reset, || self.backend.needs_reset(raw))
    }

    /// A synchronous check in backend code; a panic in it is reported like any backend
    /// panic and answers `true` (the cautious answer of both checks).
    #[inline]
    fn check(&self, phase: Phase, check: impl FnOnce() -> bool) -> bool {
        std::panic::catch_unwind(AssertUnwindSafe(check)).unwrap_or_else(|payload| {
            let _ = self.crashed(phase, &*payload);
            true
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        !self.hot.is_open()
    }

    /// Checked out, dedicated connections included: a pool with either is busy (not
    /// evicted at `max_pools`).
    pub(crate) fn in_use(&self) -> usize {
        self.hot.in_use() + self.counters.dedicated()
    }

    /// When an acquire last started on this pool.
    pub(crate) fn last_used(&self) -> Instant {
        self.hot.last_used()
    }

    /// Fit to route to: breaker closed and the last probe or connect healthy.
    #[inline]
    pub(crate) fn serving(&self) -> bool {
        self.health.serving()
    }

    /// Checked out plus waiting: what least-loaded routing compares.
    #[inline]
    pub(crate) fn load(&self) -> usize {
        self.hot.in_use() + self.hot.waiters()
    }
}
