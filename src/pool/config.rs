//! How one pool behaves: sizes, timeouts, checks. Plain data with documented defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::limits::{
    self, check_duration, check_optional_duration, check_positive_duration, check_size,
    validated_config,
};
use crate::policy::breaker::BreakerConfig;

validated_config! {
/// Settings of one pool. Every field has a default (see [`PoolConfig::default`]), so a TOML
/// table may set only what it changes.
///
/// # Bounds
///
/// Every duration is at most [`PoolConfig::MAX_DURATION`] (365 days); the sizes have the
/// maximums given on each field. [`validate`](Self::validate) checks them, and so does
/// deserialization: a config read from TOML or JSON is validated as it is read, and a bad
/// value is an error naming the field (`pool.max_size`…).
///
/// ```
/// use poolwarden::PoolConfig;
/// let cfg: PoolConfig = toml::from_str(r#"
///     max_size = 20
///     acquire_timeout = "2s"
/// "#).unwrap();
/// assert_eq!(cfg.max_size, 20);
/// assert_eq!(cfg.min_idle, PoolConfig::default().min_idle);
/// cfg.validate().unwrap();
///
/// let e = toml::from_str::<PoolConfig>(r#"acquire_timeout = "400days""#).unwrap_err();
/// assert!(e.to_string().contains("pool.acquire_timeout"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolConfig {
    /// Connections kept open while idle. Warmed up at start and refilled in the background.
    /// Default 1; at most `max_size`.
    pub min_idle: u32,
    /// Connections the pool keeps (open idle or checked out). Default 10; 1 to
    /// [`PoolConfig::MAX_SIZE`] (10 000).
    pub max_size: u32,
    /// Extra connections allowed under load beyond `max_size`; they are closed on release
    /// instead of kept idle. Default 0; at most [`PoolConfig::MAX_OVERFLOW`] (10 000).
    pub max_overflow: u32,
    /// Acquires allowed to wait at once; past it acquire fails with `PoolSaturated`.
    /// Default 65 536; at most [`PoolConfig::MAX_WAITERS`] (1 000 000).
    ///
    /// The bound is there to shed load when waiting cannot help, not to keep the queue
    /// short: a waiter costs the pool one entry in its FIFO queue (its boxed wait, a few
    /// hundred bytes, held by the caller's task). The default is about one second of queue
    /// at the highest rate measured on the benchmark machine (~60 000 acquires/s on 2
    /// cores). It was 1 024: 17 ms of queue at that rate, which one scheduling stall of a
    /// loaded machine overflows — at 80 % of the pool's peak, with other work beside it,
    /// 1 024 refused thousands of acquires with `PoolSaturated` that bb8 and deadpool (which
    /// queue without bound) served within 0.6 s (`cargo bench --bench load -- --only 3`).
    /// Lower it where a caller would rather fail at once than wait behind that many.
    pub max_waiters: usize,
    /// Whole budget of one acquire: waiting, connecting (with retries) and testing. Default 30s.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Budget of a single connect attempt. Default 5s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Budget of a single probe (test on checkout/return, health probe). Default 2s.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Idle connections beyond `min_idle` unused for this long are closed. Default 10 min;
    /// `None` keeps them (`"off"` in TOML or an environment variable, as for every optional
    /// duration here).
    #[serde(with = "crate::optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// Connections are closed after this age (minus jitter). Default 30 min; `None`
    /// (`"off"`) never.
    #[serde(with = "crate::optional_duration")]
    pub max_lifetime: Option<Duration>,
    /// Up to this much is taken off each connection's lifetime at random so they do not all
    /// expire together. Default 30s.
    #[serde(with = "humantime_serde")]
    pub lifetime_jitter: Duration,
    /// Test a connection with the backend's probe before handing it out. Default true.
    pub test_on_checkout: bool,
    /// A connection used within this window is not tested on checkout. Default 500ms.
    #[serde(with = "humantime_serde")]
    pub checkout_bypass: Duration,
    /// Test a connection with the probe when it is returned. Default false.
    pub test_on_return: bool,
    /// Run the backend's reset step on return (roll back open transactions…). Default true.
    pub reset_on_return: bool,
    /// First delay between connect retries; doubles up to `backoff_max`, full jitter. Default 50ms.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Largest delay between connect retries. Default 2s.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// The pool's maintenance tick: closing expired, idle-timed-out and broken
    /// connections, refilling to `min_idle`, leak scans. A pool is looked at on a tick only
    /// when it has something to watch (connections checked out, waiters, a refill to
    /// retry, recent acquires; idle connections when it has no background probes) or
    /// something falls due (an idle connection expiring or timing out): an idle pool is
    /// not woken on every tick. Default 1s; at least 1ms.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
    /// How often the pool probes its endpoint (each wait drawn in `[interval/2,
    /// interval]`); each probe also looks at the idle connections (broken, expired).
    /// `None` (`"off"`) turns background probes off (idle connections are then looked at
    /// on every maintenance tick). Default 5s; at least 1ms.
    #[serde(with = "crate::optional_duration")]
    pub probe_interval: Option<Duration>,
    /// Most connects in progress at once, acquires and background refills together.
    /// A pool starts with all of them allowed (a cold start on a healthy server opens as
    /// many connections at once as callers need, as bb8 and deadpool do); each failed
    /// connect that counts against the endpoint halves the number allowed, down to 4 (so
    /// one connect that hangs until its timeout never holds up all the others), and each
    /// success adds one back, so a server coming back sees 4 connects, then 8, 16 … (a
    /// slow start) rather than the pool's whole size at once
    /// ([`PoolStats::connect_window`](crate::PoolStats::connect_window) shows the number
    /// allowed now). Default 16; 1 to [`PoolConfig::MAX_CONNECTING`] (10 000).
    pub max_connecting: u32,
    /// The endpoint's circuit breaker. Default [`BreakerConfig::default`].
    #[serde(deserialize_with = "limits::nested")]
    pub breaker: BreakerConfig,
    /// Report a connection held longer than this (once, with a warning). `None` (`"off"`,
    /// the default) turns leak detection off and costs nothing.
    #[serde(with = "crate::optional_duration")]
    pub leak_threshold: Option<Duration>,
    /// Free the slot of a connection held this long; the late return then only closes it.
    /// Needs `leak_threshold`. Default `None` (`"off"`).
    #[serde(with = "crate::optional_duration")]
    pub leak_reclaim_after: Option<Duration>,
    /// Capture a backtrace at each checkout while leak detection is on, to show where a
    /// leaked connection was taken. Default false.
    pub leak_backtrace: bool,
}
fields: PoolConfigFields, #[serde(default, deny_unknown_fields)], default;
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            min_idle: 1,
            max_size: 10,
            max_overflow: 0,
            max_waiters: 65_536,
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            lifetime_jitter: Duration::from_secs(30),
            test_on_checkout: true,
            checkout_bypass: Duration::from_millis(500),
            test_on_return: false,
            reset_on_return: true,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            maintenance_interval: Duration::from_secs(1),
            probe_interval: Some(Duration::from_secs(5)),
            max_connecting: 16,
            breaker: BreakerConfig::default(),
            leak_threshold: None,
            leak_reclaim_after: None,
            leak_backtrace: false,
        }
    }
}

/// Named presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Small and quick to fail: 0 idle, 5 max, 5s acquire timeout.
    Development,
    /// The defaults.
    Production,
    /// Many short checkouts: 10 idle, 50 max + 10 overflow, 4096 waiters, 5s acquire timeout.
    HighLoad,
    /// Few long checkouts: 0 idle, 4 max, 5 min acquire timeout, no checkout bypass.
    Batch,
}

impl PoolConfig {
    /// The preset for `profile`.
    pub fn profile(profile: Profile) -> Self {
        let d = Self::default();
        match profile {
            Profile::Development => Self {
                min_idle: 0,
                max_size: 5,
                acquire_timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(2),
                ..d
            },
            Profile::Production => d,
            Profile::HighLoad => Self {
                min_idle: 10,
                max_size: 50,
                max_overflow: 10,
                max_waiters: 4096,
                acquire_timeout: Duration::from_secs(5),
                ..d
            },
            Profile::Batch => Self {
                min_idle: 0,
                max_size: 4,
                acquire_timeout: Duration::from_secs(300),
                idle_timeout: Some(Duration::from_secs(60)),
                checkout_bypass: Duration::ZERO,
                ..d
            },
        }
    }

    /// Hard cap on open connections: `max_size + max_overflow`.
    pub fn capacity(&self) -> usize {
        self.max_size as usize + self.max_overflow as usize
    }

    /// Longest any duration setting may be: 365 days.
    pub const MAX_DURATION: Duration = limits::MAX_DURATION;
    /// Largest `max_size`.
    pub const MAX_SIZE: u32 = limits::MAX_POOL_SIZE;
    /// Largest `max_overflow`.
    pub const MAX_OVERFLOW: u32 = limits::MAX_OVERFLOW;
    /// Largest `max_waiters`.
    pub const MAX_WAITERS: usize = limits::MAX_WAITERS;
    /// Largest `max_connecting`.
    pub const MAX_CONNECTING: u32 = limits::MAX_CONNECTING;

    /// Check the fields; the error names the first bad one. Deserialization runs this too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_size("pool.max_size", self.max_size, 1, Self::MAX_SIZE)?;
        if self.min_idle > self.max_size {
            return Err(ConfigError::new(
                "pool.min_idle",
                format!(
                    "({}) must not exceed max_size ({})",
                    self.min_idle, self.max_size
                ),
            ));
        }
        check_size(
            "pool.max_overflow",
            self.max_overflow,
            0,
            Self::MAX_OVERFLOW,
        )?;
        check_size("pool.max_waiters", self.max_waiters, 0, Self::MAX_WAITERS)?;
        check_positive_duration("pool.acquire_timeout", self.acquire_timeout)?;
        check_positive_duration("pool.connect_timeout", self.connect_timeout)?;
        check_positive_duration("pool.probe_timeout", self.probe_timeout)?;
        check_optional_duration("pool.idle_timeout", self.idle_timeout)?;
        check_optional_duration("pool.max_lifetime", self.max_lifetime)?;
        check_duration("pool.lifetime_jitter", self.lifetime_jitter)?;
        if let Some(d) = self.max_lifetime {
            if self.lifetime_jitter >= d {
                return Err(ConfigError::new(
                    "pool.lifetime_jitter",
                    "must be shorter than max_lifetime",
                ));
            }
        }
        check_duration("pool.checkout_bypass", self.checkout_bypass)?;
        check_positive_duration("pool.backoff_initial", self.backoff_initial)?;
        check_duration("pool.backoff_max", self.backoff_max)?;
        if self.backoff_max < self.backoff_initial {
            return Err(ConfigError::new(
                "pool.backoff_max",
                "must not be shorter than backoff_initial",
            ));
        }
        limits::check_interval("pool.maintenance_interval", self.maintenance_interval)?;
        if let Some(every) = self.probe_interval {
            limits::check_interval("pool.probe_interval", every)?;
        }
        check_size(
            "pool.max_connecting",
            self.max_connecting,
            1,
            Self::MAX_CONNECTING,
        )?;
        self.breaker
            .validate()
            .map_err(|e| limits::nest(e, "breaker.", "pool.breaker."))?;
        check_optional_duration("pool.leak_threshold", self.leak_threshold)?;
        if let Some(r) = self.leak_reclaim_after {
            check_duration("pool.leak_reclaim_after", r)?;
        }
        match (self.leak_threshold, self.leak_reclaim_after) {
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "pool.leak_reclaim_after",
                    "needs leak_threshold",
                ))
            }
            (Some(t), Some(r)) if r < t => {
                return Err(ConfigError::new(
                    "pool.leak_reclaim_after",
                    "must not be shorter than leak_threshold",
                ))
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_profiles_are_valid() {
        PoolConfig::default().validate().unwrap();
        for p in [
            Profile::Development,
            Profile::Production,
            Profile::HighLoad,
            Profile::Batch,
        ] {
            PoolConfig::profile(p).validate().unwrap();
        }
        assert_eq!(
            PoolConfig::profile(Profile::Production),
            PoolConfig::default()
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        type Case = (fn(&mut PoolConfig), &'static str);
        let cases: Vec<Case> = vec![
            (|c| c.max_size = 0, "pool.max_size"),
            (|c| c.min_idle = 11, "pool.min_idle"),
            (
                |c| c.acquire_timeout = Duration::ZERO,
                "pool.acquire_timeout",
            ),
            (
                |c| c.connect_timeout = Duration::ZERO,
                "pool.connect_timeout",
            ),
            (
                |c| c.idle_timeout = Some(Duration::ZERO),
                "pool.idle_timeout",
            ),
            (
                |c| c.lifetime_jitter = Duration::from_secs(4000),
                "pool.lifetime_jitter",
            ),
            (
                |c| c.backoff_max = Duration::from_millis(1),
                "pool.backoff_max",
            ),
            (|c| c.max_connecting = 0, "pool.max_connecting"),
            (
                |c| c.breaker.failure_threshold = 0,
                "pool.breaker.failure_threshold",
            ),
            (
                |c| c.leak_reclaim_after = Some(Duration::from_secs(1)),
                "pool.leak_reclaim_after",
            ),
        ];
        for (mutate, field) in cases {
            let mut c = PoolConfig::default();
            mutate(&mut c);
            assert_eq!(c.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn toml_durations_and_unknown_fields() {
        let c: PoolConfig =
            toml::from_str("idle_timeout = \"90s\"\nmax_lifetime = \"1h\"").unwrap();
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(90)));
        assert_eq!(c.max_lifetime, Some(Duration::from_secs(3600)));
        let e = toml::from_str::<PoolConfig>("max_sise = 3").unwrap_err();
        assert!(e.to_string().contains("max_sise"), "{e}");
    }
}
