//! A circuit breaker as a pure state machine: the pool actor reports outcomes (connects,
//! probes, queries) and asks whether to admit an acquire. No I/O, no actix; time and
//! randomness are passed in.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{BackendError, ConfigError};

crate::limits::validated_config! {
/// Settings of a circuit breaker. Every field has a default.
///
/// Only failed connects count (see [`BackendErrorKind`](crate::BackendErrorKind) for
/// which): `failure_threshold` in a row open the breaker. While open it blocks connects,
/// not the reuse of idle connections (they are probed before they are handed out). After
/// the open time one connect is let through as a trial; `success_threshold` good trials
/// close it, a failed one opens it again. For the first `grow_after` of an outage the open
/// time stays at `open_for`, so a restart costs callers a short wait and no error; after
/// that it doubles with each failed trial up to `max_open_for`, so a long outage fails
/// fast (an acquire whose deadline comes before the next trial fails at once).
///
/// Both durations are at most 365 days
/// ([`PoolConfig::MAX_DURATION`](crate::PoolConfig::MAX_DURATION)); a breaker config is
/// validated as part of its [`PoolConfig`](crate::PoolConfig), and on its own when
/// deserialized on its own.
///
/// ```
/// use poolwarden::BreakerConfig;
/// let b: BreakerConfig = toml::from_str(r#"open_for = "100ms""#).unwrap();
/// assert_eq!(b.failure_threshold, BreakerConfig::default().failure_threshold);
/// let e = toml::from_str::<BreakerConfig>("failure_threshold = 0").unwrap_err();
/// assert!(e.to_string().contains("breaker.failure_threshold"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerConfig {
    /// Consecutive failed connects that open the breaker. Default 5.
    pub failure_threshold: u32,
    /// Consecutive successful trials (while half-open) that close it. Default 2.
    pub success_threshold: u32,
    /// How long it stays open after a trip while the outage is younger than
    /// `grow_after` (with equal jitter: between half and all of it). Default 50ms; greater
    /// than zero.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// How long an outage lasts before the open time starts to double with each failed
    /// trial. Default 1s.
    #[serde(with = "humantime_serde")]
    pub grow_after: Duration,
    /// Cap of the open time. Default 30s; at least `open_for`.
    #[serde(with = "humantime_serde")]
    pub max_open_for: Duration,
}
fields: BreakerConfigFields, #[serde(default, deny_unknown_fields)], default;
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            success_threshold: 2,
            open_for: Duration::from_millis(50),
            grow_after: Duration::from_secs(1),
            max_open_for: Duration::from_secs(30),
        }
    }
}

impl BreakerConfig {
    /// Check the fields; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.failure_threshold == 0 {
            return Err(ConfigError::new(
                "breaker.failure_threshold",
                "must be at least 1",
            ));
        }
        if self.success_threshold == 0 {
            return Err(ConfigError::new(
                "breaker.success_threshold",
                "must be at least 1",
            ));
        }
        crate::limits::check_positive_duration("breaker.open_for", self.open_for)?;
        crate::limits::check_duration("breaker.grow_after", self.grow_after)?;
        crate::limits::check_duration("breaker.max_open_for", self.max_open_for)?;
        if self.max_open_for < self.open_for {
            return Err(ConfigError::new(
                "breaker.max_open_for",
                "must not be shorter than open_for",
            ));
        }
        Ok(())
    }
}

/// The three states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Traffic flows; failures are counted.
    Closed,
    /// Traffic is refused until the open time has passed.
    Open,
    /// One trial at a time is let through.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

/// A change of state, with why and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Before.
    pub from: BreakerState,
    /// After.
    pub to: BreakerState,
    /// Why, for people.
    pub reason: String,
    /// When.
    pub at: Instant,
}

/// The answer to "may this acquire go ahead?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Allowed,
    /// Half-open: go ahead as the one trial ([`current_trial`](CircuitBreaker::current_trial)
    /// numbers it); report its outcome, or
    /// [`trial_abandoned`](CircuitBreaker::trial_abandoned).
    Trial(Option<Change>),
    /// Open, or half-open with a trial in flight: refuse until `retry_at`.
    Rejected {
        /// When a trial may next be let through.
        retry_at: Instant,
    },
}

/// The breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    failures: u32,
    successes: u32,
    trips: u32,
    /// When the breaker first opened in the current outage (reset when it closes).
    outage_since: Option<Instant>,
    /// Trips since the outage passed `grow_after`: the open time doubles with each.
    grown: u32,
    open_until: Instant,
    trial_in_flight: bool,
    /// Numbers the trials let through, so the end of one is told from a later one's.
    trial: u64,
    /// Boxed: a breaker that never failed keeps a pointer, not an error's room.
    last_error: Option<Box<BackendError>>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig, now: Instant) -> Self {
        Self {
            config,
            state: BreakerState::Closed,
            failures: 0,
            successes: 0,
            trips: 0,
            outage_since: None,
            grown: 0,
            open_until: now,
            trial_in_flight: false,
            trial: 0,
            last_error: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The error that last counted as a failure.
    pub fn last_error(&self) -> Option<&BackendError> {
        self.last_error.as_deref()
    }

    /// When an open breaker lets the next trial through.
    pub fn retry_at(&self) -> Instant {
        self.open_until
    }

    /// Open and refusing connects until the returned instant (after `now`); `None` when a
    /// connect may be tried now or as soon as the trial under way ends.
    pub fn refusing(&self, now: Instant) -> Option<Instant> {
        (self.state == BreakerState::Open && now < self.open_until).then_some(self.open_until)
    }

    /// Consecutive trips so far (reset when it closes).
    #[cfg(test)]
    pub fn trips(&self) -> u32 {
        self.trips
    }

    /// May an acquire go ahead now?
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed => Admission::Allowed,
            BreakerState::Open if now >= self.open_until => {
                let change = self.go(BreakerState::HalfOpen, "open time elapsed; trying one", now);
                self.start_trial();
                Admission::Trial(Some(change))
            }
            BreakerState::Open => Admission::Rejected {
                retry_at: self.open_until,
            },
            BreakerState::HalfOpen if self.trial_in_flight => Admission::Rejected {
                retry_at: now.max(self.open_until),
            },
            BreakerState::HalfOpen => {
                self.start_trial();
                Admission::Trial(None)
            }
        }
    }

    /// Half-open with its one trial under way: [`admit`](Self::admit) refuses until it
    /// ends (with an outcome, or [`trial_abandoned`](Self::trial_abandoned)).
    pub fn trial_in_flight(&self) -> bool {
        self.state == BreakerState::HalfOpen && self.trial_in_flight
    }

    fn start_trial(&mut self) {
        self.trial_in_flight = true;
        self.trial = self.trial.wrapping_add(1);
    }

    /// The number of the last trial [`admit`](Self::admit) let through.
    pub fn current_trial(&self) -> u64 {
        self.trial
    }

    /// Trial number `trial` ended (its acquire cancelled, or done). If no outcome was
    /// reported since it was let through, it is over without one and the next caller may
    /// try: answers true. A trial whose outcome was reported, or one older than the trial
    /// under way, changes nothing.
    pub fn trial_abandoned(&mut self, trial: u64) -> bool {
        let abandoned =
            self.state == BreakerState::HalfOpen && self.trial_in_flight && self.trial == trial;
        if abandoned {
            self.trial_in_flight = false;
        }
        abandoned
    }

    /// Report a success.
    pub fn on_success(&mut self, now: Instant) -> Option<Change> {
        self.failures = 0;
        match self.state {
            BreakerState::Closed | BreakerState::Open => None,
            BreakerState::HalfOpen => {
                self.trial_in_flight = false;
                self.successes += 1;
                (self.successes >= self.config.success_threshold).then(|| self.close(now))
            }
        }
    }

    /// An existing connection answered a probe. The server is up, but a probe is not a
    /// trial: while closed it clears the failure count, while half-open it counts toward
    /// `success_threshold` (without ending a trial in flight), while open it changes
    /// nothing (only a trial's connect reopens the way).
    pub fn on_probe_success(&mut self, now: Instant) -> Option<Change> {
        match self.state {
            BreakerState::Closed => {
                self.failures = 0;
                None
            }
            BreakerState::Open => None,
            BreakerState::HalfOpen => {
                self.successes += 1;
                (self.successes >= self.config.success_threshold).then(|| self.close(now))
            }
        }
    }

    /// Report a failure.
    pub fn on_failure(
        &mut self,
        now: Instant,
        error: BackendError,
        rng: &mut impl Rng,
    ) -> Option<Change> {
        let reason = format!("{error}");
        self.last_error = Some(Box::new(error));
        match self.state {
            BreakerState::Closed => {
                self.failures += 1;
                if self.failures >= self.config.failure_threshold {
                    Some(self.trip(
                        now,
                        format!("{} consecutive failures; last: {reason}", self.failures),
                        rng,
                    ))
                } else {
                    None
                }
            }
            BreakerState::HalfOpen => {
                self.trial_in_flight = false;
                Some(self.trip(now, format!("trial failed: {reason}"), rng))
            }
            BreakerState::Open => None,
        }
    }

    fn trip(&mut self, now: Instant, reason: String, rng: &mut impl Rng) -> Change {
        self.trips = self.trips.saturating_add(1);
        let since = *self.outage_since.get_or_insert(now);
        let factor = if now.saturating_duration_since(since) >= self.config.grow_after {
            let f = 1u32.checked_shl(self.grown.min(31)).unwrap_or(u32::MAX);
            self.grown = self.grown.saturating_add(1);
            f
        } else {
            1
        };
        let ceiling = self
            .config
            .open_for
            .saturating_mul(factor)
            .min(self.config.max_open_for);
        // Equal jitter: between half and all of the ceiling, so breakers of many pools that
        // tripped together do not retry together, yet never retry at once.
        let half = ceiling / 2;
        let extra = rng.random_range(0..=half.as_nanos().min(u64::MAX as u128) as u64);
        let open = half + Duration::from_nanos(extra);
        self.open_until = crate::limits::deadline(now, open);
        self.failures = 0;
        self.successes = 0;
        self.go(BreakerState::Open, &reason, now)
    }

    fn close(&mut self, now: Instant) -> Change {
        self.trips = 0;
        self.outage_since = None;
        self.grown = 0;
        self.last_error = None;
        self.trial_in_flight = false;
        self.go(BreakerState::Closed, "trials succeeded", now)
    }

    fn go(&mut self, to: BreakerState, reason: &str, now: Instant) -> Change {
        let from = std::mem::replace(&mut self.state, to);
        Change {
            from,
            to,
            reason: reason.to_string(),
            at: now,
        }
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
