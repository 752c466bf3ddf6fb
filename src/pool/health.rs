//! The pool's health: its circuit breaker (admission, outcome reports, transitions
//! published to the supervisor's subscribers), whether its last probe or connect
//! succeeded, its last connect error, and since when its idle connections are suspect.
//! The breaker itself is a pure state machine in `policy/breaker.rs`; this is the glue.
//!
//! Only evidence about the endpoint moves the breaker: the outcome of a fresh connect
//! (and of those, only the kinds [`BackendError::is_endpoint_down`] names). A connection
//! that broke while checked out, a failed probe of an existing connection or a caller's
//! cancellation say nothing about the server: the connection is closed and replaced, and
//! the idle connections that may share its fate are probed before they are handed out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::wake::until_woken;
use crate::error::{BackendError, Error};
use crate::key::PoolKey;
use crate::observe::pool::PoolObserver;
use crate::policy::breaker::{Admission, BreakerConfig, BreakerState, Change, CircuitBreaker};

/// Called on every circuit-breaker transition.
pub(crate) type EventSink = Arc<dyn Fn(PoolKey, Change) + Send + Sync>;

/// In this order (`repr(C)`): the two fields every acquire reads (`tripped`,
/// `suspect_at`) first, on one cache line.
#[repr(C)]
pub(crate) struct Health {
    /// Nanoseconds after `epoch` (plus one; 0: never) at which a connection last broke
    /// while checked out: idle connections last used before then (strictly) are probed
    /// first.
    suspect_at: AtomicU64,
    /// Mirrors `breaker.state() != Closed`, so a closed breaker costs one load.
    tripped: AtomicBool,
    /// The last probe or connect succeeded.
    healthy: AtomicBool,
    probing: AtomicBool,
    epoch: Instant,
    key: PoolKey,
    breaker: Mutex<CircuitBreaker>,
    /// Boxed: a pool whose connects succeed keeps a pointer, not an error's room.
    last_error: Mutex<Option<Box<BackendError>>>,
    events: Option<EventSink>,
    /// While the breaker is not closed: woken by every outcome and transition, so callers
    /// waiting for a trial look again.
    changed: Notify,
    /// Transitions are counted here (`poolwarden.breaker.*`).
    pub(super) observe: Arc<PoolObserver>,
}

/// A half-open breaker's one trial, held while it runs. Dropped, it asks the breaker
/// whether an outcome was reported for it; if none was (the acquire was cancelled, its
/// connect failed in a way that says nothing about the endpoint, it never got to connect,
/// a probe found it need not connect), it frees the trial and wakes the callers waiting
/// for it, so one of them takes it at once rather than at its deadline. The breaker knows
/// which trial is under way, so the end of an old one never ends a newer one.
pub(crate) struct TrialGuard<'a> {
    health: &'a Health,
    trial: u64,
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.health.breaker.lock().trial_abandoned(self.trial) {
            self.health.changed.notify_waiters();
        }
    }
}

/// The one probe running; dropped, it lets the next one start.
pub(super) struct Probing<'a>(&'a AtomicBool);

impl Drop for Probing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Health {
    pub(super) fn new(
        key: PoolKey,
        config: BreakerConfig,
        events: Option<EventSink>,
        now: Instant,
        observe: Arc<PoolObserver>,
    ) -> Self {
        Self {
            key,
            breaker: Mutex::new(CircuitBreaker::new(config, now)),
            tripped: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            probing: AtomicBool::new(false),
            events,
            changed: Notify::new(),
            epoch: now,
            suspect_at: AtomicU64::new(0),
            observe,
        }
    }

    /// May an acquire go ahead? A closed breaker costs one atomic load.
    #[inline]
    pub(super) fn admit(&self, now: Instant) -> Result<Option<TrialGuard<'_>>, Error> {
        if !self.tripped() {
            return Ok(None);
        }
        self.admit_tripped(now)
    }

    #[cold]
    fn admit_tripped(&self, now: Instant) -> Result<Option<TrialGuard<'_>>, Error> {
        let (change, trial) = {
            let mut b = self.breaker.lock();
            match b.admit(now) {
                Admission::Allowed => return Ok(None),
                Admission::Trial(change) => (change, b.current_trial()),
                Admission::Rejected { .. } => return Err(self.open_error(&b, now, None)),
            }
        };
        self.publish(change);
        Ok(Some(TrialGuard {
            health: self,
            trial,
        }))
    }

    /// The breaker is not closed.
    #[inline]
    pub(super) fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    pub(super) fn state(&self) -> BreakerState {
        self.breaker.lock().state()
    }

    /// Open and refusing connects until the returned instant; `None` while closed, or
    /// when a connect may be tried now (or once the trial under way ends).
    #[inline]
    pub(super) fn refusing(&self, now: Instant) -> Option<Instant> {
        if !self.tripped() {
            return None;
        }
        self.breaker.lock().refusing(now)
    }

    /// Resolves at the next outcome or transition while the breaker is not closed, or at
    /// [`wake`](Self::wake) (enable it before looking at the state).
    pub(super) fn changed(&self) -> Notified<'_> {
        self.changed.notified()
    }

    /// Until the half-open trial under way (if any) ends, with an outcome or without.
    /// Cancel safe.
    pub(super) async fn trial_ends(&self) {
        until_woken(&self.changed, || self.breaker.lock().trial_in_flight()).await;
    }

    /// A connection broke while checked out: the idle connections used before now may
    /// have died with it (a restart, a terminated backend), so they are probed before
    /// they are handed out. Nothing is counted against the endpoint.
    pub(super) fn suspect(&self, now: Instant) {
        let at = now.saturating_duration_since(self.epoch).as_nanos() as u64 + 1;
        self.suspect_at.fetch_max(at, Ordering::Relaxed);
    }

    /// Whether a connection last used at `last_used` (the pool's clock) must be probed before reuse because
    /// one broke since.
    #[inline]
    pub(super) fn suspects(&self, last_used: u64) -> bool {
        // `last_used` is on the pool's clock (`Hot::nanos`), whose epoch is this one.
        let at = self.suspect_at.load(Ordering::Relaxed);
        at != 0 && last_used + 1 < at
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

    fn report_success(&self) {
        let change = self.breaker.lock().on_success(Instant::now());
        self.publish(change);
    }

    fn report_failure(&self, error: &BackendError) {
        let change =
            self.breaker
                .lock()
                .on_failure(Instant::now(), error.clone(), &mut rand::rng());
        self.publish(change);
    }

    /// An existing connection answered its probe: the server is up (see
    /// [`CircuitBreaker::on_probe_success`]).
    pub(super) fn probe_ok(&self) {
        let change = self.breaker.lock().on_probe_success(Instant::now());
        self.publish(change);
    }

    /// A connection opened a moment ago failed its probe: the endpoint accepts
    /// connections but cannot serve them, which counts against it.
    pub(super) fn fresh_probe_failed(&self, error: &BackendError) {
        *self.last_error.lock() = Some(Box::new(error.clone()));
        self.report_failure(error);
    }

    fn publish(&self, change: Option<Change>) {
        let Some(change) = change else {
            if self.tripped() {
                // An outcome without a transition (a half-open trial succeeded, one more
                // to go): the next waiter may try.
                self.changed.notify_waiters();
            }
            return;
        };
        self.tripped
            .store(change.to != BreakerState::Closed, Ordering::Release);
        self.changed.notify_waiters();
        self.observe.breaker(change.to);
        let name = self.observe.label();
        match change.to {
            BreakerState::Open => {
                tracing::warn!(pool = %self.key, pool_name = name, from = %change.from, to = %change.to, reason = %change.reason, "circuit breaker opened")
            }
            _ => {
                tracing::info!(pool = %self.key, pool_name = name, from = %change.from, to = %change.to, reason = %change.reason, "circuit breaker transition")
            }
        }
        if let Some(sink) = &self.events {
            sink(self.key, change);
        }
    }

    /// A connect succeeded: healthy, and no last error.
    pub(super) fn connected(&self) {
        *self.last_error.lock() = None;
        self.healthy.store(true, Ordering::Relaxed);
        self.report_success();
    }

    /// A connect failed with `error`: remembered as the last error, and counted against
    /// the endpoint if its kind says the endpoint is down. Answers whether it counted.
    pub(super) fn connect_failed(&self, error: &BackendError) -> bool {
        *self.last_error.lock() = Some(Box::new(error.clone()));
        let counts = error.is_endpoint_down();
        if counts {
            self.report_failure(error);
        }
        counts
    }

    pub(super) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub(super) fn last_error(&self) -> Option<BackendError> {
        self.last_error.lock().as_deref().cloned()
    }

    /// Fit to route to: breaker closed and the last probe or connect healthy.
    #[inline]
    pub(super) fn serving(&self) -> bool {
        !self.tripped() && self.healthy.load(Ordering::Relaxed)
    }

    /// Start the one probe; `None` if one is running. (The guard is built only when the
    /// flag was ours: built and dropped otherwise, it would clear the running probe's.)
    pub(super) fn start_probe(&self) -> Option<Probing<'_>> {
        (!self.probing.swap(true, Ordering::AcqRel)).then(|| Probing(&self.probing))
    }

    /// The verdict without a probe: an open breaker, else the last probe or connect.
    pub(super) fn judge_by_history(&self) -> Result<(), String> {
        // An open breaker is the freshest verdict there is (the probe running now may be
        // the one that opened it).
        if self.tripped() {
            let b = self.breaker.lock();
            if b.state() == BreakerState::Open {
                return Err(self.open_error(&b, Instant::now(), None).to_string());
            }
        }
        match (
            self.healthy.load(Ordering::Relaxed),
            self.last_error.lock().as_deref(),
        ) {
            (false, Some(e)) => Err(e.to_string()),
            _ => Ok(()),
        }
    }
}
