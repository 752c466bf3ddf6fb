//! What one pool records: its label, the wait-time and use-time windows (allocated on
//! the first record), close counts by reason and, with the `metrics` feature, its metric
//! handles (`handles.rs`). The pool calls in; nothing here knows the pool's internals.
//! What it is told of (an acquire, a return, a close, a timeout, a breaker transition) also
//! touches the pool's [`Bell`], which wakes a pool its maintenance has parked.

pub(crate) use super::levels::Levels;
#[cfg(feature = "metrics")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use super::reason::{CloseCounts, CloseReason, Closes};
use super::window::{Percentiles, Window};
use crate::error::BackendErrorKind;
use crate::key::PoolKey;
use crate::policy::breaker::BreakerState;
use crate::timetable::Bell;

#[cfg(feature = "metrics")]
use super::handles::Handles;

/// How long one slice of the percentile windows is current (the window is two).
pub(crate) const SLICE: Duration = Duration::from_secs(30);

/// The pool's label: its registered name, else `key:<12 hex digits>` (never a URL, never
/// a password).
pub(crate) fn label(key: PoolKey, name: Option<&str>) -> Arc<str> {
    match name {
        Some(n) => n.into(),
        // The key's `Display`: 12 hex digits, as documented (not `to_hex`, all 64).
        None => format!("key:{key}").into(),
    }
}

/// The windows of one pool.
struct Windows {
    wait: Window,
    used: Window,
}

/// In this order (`repr(C)`): what the acquire path reads first, together.
#[repr(C)]
pub(crate) struct PoolObserver {
    windows: OnceLock<Box<Windows>>,
    bell: Bell,
    /// Shared by the pool's metric series.
    label: Arc<str>,
    closes: Closes,
    #[cfg(feature = "metrics")]
    handles: OnceLock<Box<Handles>>,
    /// [`Levels::digest`] of what the gauges were last set to (0: never).
    #[cfg(feature = "metrics")]
    levels_sent: AtomicU64,
}

impl PoolObserver {
    pub(crate) fn new(key: PoolKey, name: Option<&str>) -> Self {
        Self {
            windows: OnceLock::new(),
            bell: Bell::default(),
            label: label(key, name),
            closes: Closes::default(),
            #[cfg(feature = "metrics")]
            handles: OnceLock::new(),
            #[cfg(feature = "metrics")]
            levels_sent: AtomicU64::new(0),
        }
    }

    /// `db.client.connection.pool.name` of this pool.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The pool's place in its supervisor's timetable.
    pub(crate) fn bell(&self) -> &Bell {
        &self.bell
    }

    /// Nothing recorded in the windows that a tick still has to rotate out (or, with a
    /// recorder, hand over); `served`: the pool's count of checkouts (see
    /// [`waited`](Self::waited)).
    pub(crate) fn quiet(&self, served: u64) -> bool {
        self.windows
            .get()
            .is_none_or(|w| w.wait.quiet(served) && w.used.quiet(0))
    }

    #[inline]
    fn windows(&self) -> &Windows {
        self.windows.get_or_init(|| {
            Box::new(Windows {
                wait: Window::new(SLICE),
                used: Window::new(SLICE),
            })
        })
    }

    /// The metric handles, registered with the recorder of the moment on first use (the
    /// pool actor's start: install a recorder before starting the supervisor).
    #[cfg(feature = "metrics")]
    #[inline]
    fn handles(&self) -> &Handles {
        self.handles
            .get_or_init(|| Box::new(Handles::new(&self.label)))
    }

    /// Register the handles now (the pool is being started).
    pub(crate) fn register(&self, breaker: BreakerState) {
        #[cfg(feature = "metrics")]
        self.handles().breaker(breaker, None);
        #[cfg(not(feature = "metrics"))]
        let _ = breaker;
    }

    /// An acquire got its connection after `d`. Hot path: window only, and nothing at
    /// all for a zero wait (the usual acquire): the wait window counts the checkouts it
    /// was not told of as zeros, from the `served` count its readers pass in, which the
    /// pool keeps on a line the acquire writes anyway.
    #[inline]
    pub(crate) fn waited(&self, d: Duration) {
        if !d.is_zero() {
            self.windows().wait.record(d);
        }
        self.bell.touch();
    }

    /// A connection was checked out for `d`. Hot path: window only.
    #[inline]
    pub(crate) fn used(&self, d: Duration) {
        self.windows().used.record(d);
        self.bell.touch();
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        self.bell.touch();
        self.closes.add(reason);
        #[cfg(feature = "metrics")]
        self.handles().closed(reason);
    }

    pub(crate) fn close_counts(&self) -> CloseCounts {
        self.closes.counts()
    }

    /// (wait, use) percentiles over the window; zero before the first acquire. `served`:
    /// the pool's count of checkouts.
    pub(crate) fn percentiles(&self, now: Instant, served: u64) -> (Percentiles, Percentiles) {
        match self.windows.get() {
            Some(w) => (w.wait.percentiles(now, served), w.used.percentiles(now, 0)),
            None => Default::default(),
        }
    }

    pub(crate) fn timed_out(&self) {
        self.bell.touch();
        #[cfg(feature = "metrics")]
        self.handles().timeouts.increment(1);
    }

    pub(crate) fn saturated(&self) {
        self.bell.touch();
        #[cfg(feature = "metrics")]
        self.handles().saturated.increment(1);
    }

    pub(crate) fn restarted(&self) {
        #[cfg(feature = "metrics")]
        self.handles().restarted();
    }

    pub(crate) fn leaks(&self, reported: u64, reclaimed: u64) {
        #[cfg(feature = "metrics")]
        if reported + reclaimed > 0 {
            self.handles().leaks(reported, reclaimed);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (reported, reclaimed);
    }

    pub(crate) fn connect_attempted(&self) {
        #[cfg(feature = "metrics")]
        self.handles().connect_attempts.increment(1);
    }

    /// A connect opened a connection after `d`.
    pub(crate) fn connected(&self, d: Duration) {
        #[cfg(feature = "metrics")]
        self.handles().create_time.record(d.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = d;
    }

    pub(crate) fn connect_failed(&self, kind: BackendErrorKind) {
        #[cfg(feature = "metrics")]
        self.handles().connect_failed(kind);
        #[cfg(not(feature = "metrics"))]
        let _ = kind;
    }

    pub(crate) fn breaker(&self, to: BreakerState) {
        self.bell.touch();
        #[cfg(feature = "metrics")]
        self.handles().breaker(to, Some(to));
        #[cfg(not(feature = "metrics"))]
        let _ = to;
    }

    /// The maintenance tick: rotate the windows when due, pass what they gathered to the
    /// recorder's histograms, and set the gauges from `levels`. `served`: the pool's
    /// count of checkouts.
    pub(crate) fn tick(&self, now: Instant, levels: Levels, served: u64) {
        #[cfg(feature = "metrics")]
        {
            // An idle pool's figures do not change: its tick leaves the recorder alone.
            let digest = levels.digest();
            if self.levels_sent.swap(digest, Ordering::Relaxed) != digest {
                self.handles().levels(levels);
            }
            if let Some(w) = self.windows.get() {
                self.handles().flush(&w.wait, &w.used, now, served);
                return;
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = levels;
        if let Some(w) = self.windows.get() {
            for (window, total) in [(&w.wait, served), (&w.used, 0)] {
                if window.due(now) {
                    window.rotate(now, total);
                }
            }
        }
    }
}
