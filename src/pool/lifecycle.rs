//! The pool's lifecycle, driven by its actor: closing, draining, reaping, warming,
//! resizing, generations and restart intensity.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{timeout_at, Instant};

use super::core::{CrashHook, PoolShared, Slot, WaiterCount, CLOSED, FAILED, OPEN, SHUTTING_DOWN};
use crate::backend::Backend;
use crate::error::{Error, Phase};

impl<B: Backend> PoolShared<B> {
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

    /// Count a restart; more than `max` within `window` marks the pool failed (as OTP's
    /// restart intensity). Answers whether it failed now.
    pub(crate) fn record_restart(&self, max: u32, window: Duration) -> bool {
        let now = Instant::now();
        let mut log = self.restart_log.lock();
        log.push_back(now);
        while log
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            log.pop_front();
        }
        let failed = log.len() > max as usize
            && self
                .state
                .compare_exchange(OPEN, FAILED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
        drop(log);
        if failed {
            // Acquires queued for a slot learn it now, not at their acquire timeout.
            self.state_changed.notify_waiters();
        }
        failed
    }

    /// Bring a failed pool back. Answers whether it was failed.
    pub(crate) fn revive(&self) -> bool {
        self.restart_log.lock().clear();
        self.state
            .compare_exchange(FAILED, OPEN, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
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
        self.state_changed.notify_waiters();
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
        // Open connections above max_size (after a shrinking resize): idle ones go now,
        // checked-out ones as they come back.
        let mut excess = self.live.load(Ordering::Relaxed).saturating_sub(max_size);
        let mut doomed = Vec::new();
        {
            let mut idle = self.idle.lock();
            let mut i = 0;
            while i < idle.len() {
                let len = idle.len();
                let c = &mut idle[i];
                let stale = c.generation != generation
                    || c.expires.is_some_and(|e| e <= now)
                    || self.backend.is_broken(&mut c.raw);
                // The front holds the longest idle; only trim above min_idle (and max_size).
                let surplus = len > max_size
                    || excess > 0
                    || (len > min_idle
                        && self
                            .config
                            .idle_timeout
                            .is_some_and(|t| now.saturating_duration_since(c.last_used) >= t));
                if stale || surplus {
                    doomed.extend(idle.remove(i));
                    excess = excess.saturating_sub(1);
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
    /// a waiter needs) and never past `max_size`: idle connections hold no slot, so the
    /// slots alone do not bound them. Returns how many were opened.
    pub(crate) async fn warm(self: &Arc<Self>, target: usize) -> usize {
        let target = target.min(self.max_size.load(Ordering::Relaxed) as usize);
        // Not checked out by a user = idle, or briefly out of the deque for a probe or a
        // reset and coming back: counting only the deque would open one too many while a
        // probe runs.
        let not_in_use = self
            .live
            .load(Ordering::Relaxed)
            .saturating_sub(self.in_use.load(Ordering::Relaxed));
        let underway = not_in_use + self.warming.load(Ordering::Relaxed);
        let missing = target.saturating_sub(underway).min(self.room());
        self.warming.fetch_add(missing, Ordering::Relaxed);
        let opens = (0..missing).map(|_| {
            let warming = WaiterCount(&self.warming);
            async move {
                let _warming = warming;
                self.open_one(Instant::now() + self.config.connect_timeout)
                    .await
            }
        });
        futures::future::join_all(opens)
            .await
            .into_iter()
            .filter(|r| matches!(r, Ok(true)))
            .count()
    }

    /// How many more connections fit under `max_size`, counting those being opened.
    pub(super) fn room(&self) -> usize {
        let max_size = self.max_size.load(Ordering::Relaxed) as usize;
        let open = self.live.load(Ordering::Relaxed) + self.connecting.load(Ordering::Relaxed);
        max_size.saturating_sub(open)
    }

    /// Open one connection into the idle deque on a free slot, on the home runtime when
    /// one is known (`pool/home.rs`). `Ok(false)`: no free slot (or the pool is closed),
    /// nothing was tried. Cancellation safe: the work is a task of its own that holds the
    /// slot, so dropping this future leaves it to finish and file the connection.
    pub(super) async fn open_one(self: &Arc<Self>, deadline: Instant) -> Result<bool, Error> {
        if let Some(home) = self.home.get() {
            let pool = Arc::clone(self);
            match home
                .spawn(async move { pool.open_here(deadline).await })
                .await
            {
                Ok(opened) => return opened,
                // That runtime has shut down: open here instead.
                Err(e) if e.is_cancelled() => self.home.forget(),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        self.open_here(deadline).await
    }

    async fn open_here(&self, deadline: Instant) -> Result<bool, Error> {
        if self.is_closed() {
            return Ok(false);
        }
        let Ok(p) = self.slots.try_acquire() else {
            return Ok(false);
        };
        p.forget();
        let _slot = Slot { pool: self };
        let conn = self
            .connect(Instant::now(), deadline, Phase::Connect)
            .await
            .inspect_err(
                |e| tracing::debug!(pool = %self.key, error = %e, "background connect failed"),
            )?;
        self.idle.lock().push_back(conn);
        Ok(true)
    }

    /// Top up to `min_idle` (what the maintenance tick calls).
    /// While the breaker is not closed, probes do the trials and refills wait.
    pub(crate) async fn refill(self: &Arc<Self>) -> usize {
        if self.breaker_tripped.load(Ordering::Relaxed) {
            return 0;
        }
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
}
