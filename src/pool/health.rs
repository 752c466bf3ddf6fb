//! The pool's health: its circuit breaker (admission, outcome reports, transitions
//! published to the supervisor's subscribers), whether its last probe or connect
//! succeeded, and its last connect error. The breaker itself is a pure state machine in
//! `policy/breaker.rs`; this is the glue. The probes that feed it are in `probe.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::error::{BackendError, Error};
use crate::key::PoolKey;
use crate::policy::breaker::{Admission, BreakerConfig, BreakerState, Change, CircuitBreaker};

/// Called on every circuit-breaker transition.
pub(crate) type EventSink = Arc<dyn Fn(PoolKey, Change) + Send + Sync>;

pub(crate) struct Health {
    key: PoolKey,
    breaker: Mutex<CircuitBreaker>,
    /// Mirrors `breaker.state() != Closed`, so a closed breaker costs one load.
    tripped: AtomicBool,
    /// The last probe or connect succeeded.
    healthy: AtomicBool,
    last_error: Mutex<Option<BackendError>>,
    probing: AtomicBool,
    events: Option<EventSink>,
}

/// A half-open breaker's one trial. Dropped without an outcome (the acquire was cancelled
/// or failed before probing or connecting), it frees the trial for someone else.
pub(crate) struct TrialGuard<'a> {
    health: &'a Health,
}

impl TrialGuard<'_> {
    /// The outcome was reported; nothing to undo.
    pub(crate) fn resolved(self) {
        std::mem::forget(self);
    }
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        self.health.breaker.lock().trial_abandoned();
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
    ) -> Self {
        Self {
            key,
            breaker: Mutex::new(CircuitBreaker::new(config, now)),
            tripped: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            probing: AtomicBool::new(false),
            events,
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
        let change = {
            let mut b = self.breaker.lock();
            match b.admit(now) {
                Admission::Allowed => return Ok(None),
                Admission::Trial(change) => change,
                Admission::Rejected { .. } => return Err(self.open_error(&b, now, None)),
            }
        };
        self.publish(change);
        Ok(Some(TrialGuard { health: self }))
    }

    /// The breaker is not closed.
    #[inline]
    pub(super) fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    pub(super) fn state(&self) -> BreakerState {
        self.breaker.lock().state()
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
        self.tripped
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

    /// A connect succeeded: healthy, and no last error.
    pub(super) fn connected(&self) {
        *self.last_error.lock() = None;
        self.healthy.store(true, Ordering::Relaxed);
        self.report_success();
    }

    /// A connect failed with `error`: remembered as the last error and reported.
    pub(super) fn connect_failed(&self, error: &BackendError) {
        *self.last_error.lock() = Some(error.clone());
        self.report_failure(error);
    }

    pub(super) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub(super) fn last_error(&self) -> Option<BackendError> {
        self.last_error.lock().clone()
    }

    /// Fit to route to: breaker closed and the last probe or connect healthy.
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
            self.last_error.lock().as_ref(),
        ) {
            (false, Some(e)) => Err(e.to_string()),
            _ => Ok(()),
        }
    }
}
