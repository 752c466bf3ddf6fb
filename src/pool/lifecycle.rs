//! The pool's lifecycle, driven by its actor and its supervisor's timetable: warm-up and
//! refill, reaping, the maintenance run, resizing, restarts (generations, restart
//! intensity), leak scans, closing and draining.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{timeout_at, Instant};

use super::hot::PoolState;
use super::incarnation::CrashHook;
use super::shared::PoolShared;
use crate::backends::Backend;
use crate::error::Error;
use crate::limits::deadline as far_at;
use crate::observe::reason::CloseReason;

/// What a maintenance run leaves to do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upkeep {
    /// Below `min_idle` and free to open connections now.
    pub(crate) refill: bool,
    /// Something to look at again on the next tick, though nothing may ring for it.
    pub(crate) watch: bool,
    /// When an idle connection kept now expires or times out.
    pub(crate) due: Option<Instant>,
    /// Idle connections after the run.
    pub(crate) idle: usize,
}

impl<B: Backend> PoolShared<B> {
    pub(crate) fn set_crash_hook(&self, hook: Option<CrashHook>) {
        self.incarnation.set_crash_hook(hook);
    }

    /// A new actor incarnation: connections of earlier ones are closed, idle now or when
    /// they come back.
    pub(crate) fn new_generation(&self) -> u64 {
        self.counters.restarted();
        self.observe.restarted();
        let g = self.incarnation.next();
        self.drain_idle(CloseReason::StaleGeneration);
        // Dedicated connections watch for a new generation.
        self.hot.wake_waiters();
        g
    }

    /// Count a restart; more than `max` within `window` marks the pool failed (as OTP's
    /// restart intensity). Answers whether it failed now. Acquires queued for a slot learn
    /// it at once, not at their acquire timeout.
    pub(crate) fn record_restart(&self, max: u32, window: Duration) -> bool {
        let failed = self.incarnation.restart_too_often(max, window)
            && self.hot.transition(PoolState::Open, PoolState::Failed);
        if failed {
            // Pairs with the fence in `enter_queue`: a waiter either sees the state or is
            // counted here, and each counted one gets a permit that wakes it.
            fence(Ordering::SeqCst);
            self.slots.flood(self.hot.waiters());
        }
        failed
    }

    /// Bring a failed pool back. Answers whether it was failed.
    pub(crate) fn revive(&self) -> bool {
        self.incarnation.forget_restarts();
        let revived = self.hot.transition(PoolState::Failed, PoolState::Open);
        if revived {
            self.slots.settle();
        }
        revived
    }

    /// Stop serving: waiters (paused ones too) and new acquires get `PoolClosed` (or
    /// `ShuttingDown`); dedicated connections are told to close (their `closed()`
    /// resolves). Answers how many idle connections were closed.
    pub(crate) fn close(&self, shutting_down: bool) -> usize {
        let state = if shutting_down {
            PoolState::ShuttingDown
        } else {
            PoolState::Closed
        };
        // The first reason wins: a shutdown is not downgraded to a plain close.
        self.hot.transition(PoolState::Open, state);
        self.slots.close();
        self.pause.close();
        let drained = self.drain_idle(CloseReason::Shutdown);
        self.slots.wake_returned();
        self.hot.wake_waiters();
        drained
    }

    /// Close every idle connection for `reason`; returns how many.
    pub(crate) fn drain_idle(&self, reason: CloseReason) -> usize {
        let drained = self.idle.drain();
        let n = drained.len();
        drained.into_iter().for_each(|c| self.close_conn(c, reason));
        n
    }

    /// Wait until nothing is checked out and no dedicated connection is open, or
    /// `deadline`. Returns what is still out (checked out plus dedicated).
    pub(crate) async fn wait_returned(&self, deadline: Instant) -> usize {
        loop {
            let returned = self.slots.returned();
            let out = self.in_use();
            if out == 0 || timeout_at(deadline, returned).await.is_err() {
                return self.in_use();
            }
        }
    }

    /// Close expired, stale and idle-timed-out connections (keeping `min_idle`). Returns
    /// how many were closed.
    pub(crate) fn reap(&self) -> usize {
        self.reap_at(Instant::now()).0
    }

    /// [`reap`](Self::reap) at `now`; also answers when the next idle connection kept
    /// expires or times out, if one will.
    fn reap_at(&self, now: Instant) -> (usize, Option<Instant>) {
        let now_ns = self.hot.nanos(now);
        let generation = self.incarnation.generation();
        let min_idle = self.slots.min_idle();
        let max_size = self.slots.max_size();
        // Open connections above max_size (after a shrinking resize): idle ones go now,
        // checked-out ones as they come back.
        let mut excess = self.counters.live().saturating_sub(max_size);
        // The reason of each connection taken, in the order `take_where` visits them.
        let mut reasons = Vec::new();
        let mut due: Option<Instant> = None;
        let mut due_at = |at: Instant| due = Some(due.map_or(at, |d| d.min(at)));
        let doomed = self.idle.take_where(|c, len| {
            // On the pool's clock (`Hot::nanos`), as `used` is.
            let idle_until = self.config.idle_timeout.map(|t| {
                c.used
                    .saturating_add(t.as_nanos().min(u64::MAX as u128) as u64)
            });
            let reason = if c.outlived(generation, now) {
                Some(self.outlived_reason(c))
            } else if self.conn_is_broken(&mut c.raw) {
                Some(CloseReason::Broken)
            // The front holds the longest idle; only trim above min_idle (and max_size).
            } else if len > max_size || excess > 0 {
                Some(CloseReason::Shrink)
            } else if len > min_idle && idle_until.is_some_and(|until| until <= now_ns) {
                Some(CloseReason::IdleTimeout)
            } else {
                // Kept: when it will not be. (Beyond min_idle now, it may time out.)
                c.expires.into_iter().for_each(&mut due_at);
                if len > min_idle {
                    idle_until
                        .map(|ns| self.hot.instant(ns))
                        .into_iter()
                        .for_each(&mut due_at);
                }
                None
            };
            if let Some(r) = reason {
                excess = excess.saturating_sub(1);
                reasons.push(r);
            }
            reason.is_some()
        });
        let n = doomed.len();
        if n > 0 {
            let _span = tracing::debug_span!("poolwarden.evict", pool = %self.key, pool_name = self.observe.label(), closed = n).entered();
            for (c, r) in doomed.into_iter().zip(reasons) {
                tracing::debug!(pool_name = self.observe.label(), reason = %r, "closing idle connection");
                self.close_conn(c, r);
            }
        }
        (n, due)
    }

    /// Report connections held past `leak_threshold` (once each) and free the slots of
    /// those held past `leak_reclaim_after`. Called by the maintenance tick.
    pub(crate) fn scan_leaks(&self) -> usize {
        let reported = self.leaks.reported();
        let (events, reclaimed) = self.leaks.scan();
        self.observe.leaks(
            self.leaks.reported().saturating_sub(reported),
            reclaimed as u64,
        );
        for _ in 0..reclaimed {
            self.hot.checked_in();
            self.counters.detached();
            self.release_slot();
        }
        events
    }

    /// Open connections until `target` are idle, using only free slots (never taking one
    /// a waiter needs) and never past `max_size`: idle connections hold no slot, so the
    /// slots alone do not bound them. Returns how many were opened.
    pub(crate) async fn warm(self: &Arc<Self>, target: usize) -> usize {
        let warming = self.counters.warming();
        let missing = self.missing(target);
        warming.add(missing);
        let opens = (0..missing).map(|_| {
            let warming = warming.adopt();
            async move {
                let _warming = warming;
                self.open_one(far_at(Instant::now(), self.config.connect_timeout), true)
                    .await
            }
        });
        futures::future::join_all(opens)
            .await
            .into_iter()
            .filter(|r| matches!(r, Ok(true)))
            .count()
    }

    /// How many connections [`warm`](Self::warm) would open for `target` idle ones now.
    fn missing(&self, target: usize) -> usize {
        let target = target.min(self.slots.max_size());
        // Not checked out by a user = idle, or briefly out of the deque for a probe or a
        // reset and coming back: counting only the deque would open one too many while a
        // probe runs.
        let not_in_use = self.counters.live().saturating_sub(self.hot.in_use());
        let underway = not_in_use + self.counters.warming().get();
        target.saturating_sub(underway).min(self.room())
    }

    /// One maintenance run (what the timetable asks of the pool when it is due): close
    /// expired, broken, idle-timed-out and surplus idle connections, report and reclaim
    /// leaks, hand the figures to the recorder. Answers what is left to do.
    pub(crate) fn maintain(&self, now: Instant) -> Upkeep {
        let (_, due) = self.reap_at(now);
        if self.config.leak_threshold.is_some() {
            self.scan_leaks();
        }
        let idle = self.idle.len();
        self.observe_tick(now, idle);
        let below = self.missing(self.slots.min_idle()) > 0;
        let refill = below && !self.health.tripped() && !self.pause.is_paused();
        let in_use = self.hot.in_use();
        // What can change with nothing the pool is told of (see `observe/pool.rs`): a
        // refill to retry, checked-out connections (a leak ripening, waiters queueing), a
        // connect finishing, the percentile windows to rotate. (Idle connections are
        // watched on the ticks only without background probes, which look at them on
        // theirs.)
        let watch = below
            || (idle > 0 && self.config.probe_interval.is_none())
            || in_use > 0
            || self.hot.waiters() > 0
            || self.counters.connects_under_way() > 0
            || self.counters.warming().get() > 0
            || !self.observe.quiet(self.hot.served());
        Upkeep {
            refill,
            watch,
            due,
            idle,
        }
    }

    /// How many more connections fit under `max_size` (and under what the server
    /// accepted, after a capacity refusal), counting those being opened.
    pub(super) fn room(&self) -> usize {
        let open = self.counters.live() + self.counters.connects_under_way();
        self.effective_size().saturating_sub(open)
    }

    /// `max_size`, or fewer while the server accepts no more than that.
    pub(crate) fn effective_size(&self) -> usize {
        let max = self.slots.max_size();
        self.capacity.limit().map_or(max, |l| l.min(max))
    }

    /// Open one connection into the idle deque on a free slot, on the home runtime when
    /// one is known (`home.rs`). `Ok(false)`: no free slot (or the pool is closed),
    /// nothing was tried. Cancellation safe: the work is a task of its own that holds the
    /// slot, so dropping this future leaves it to finish and file the connection.
    /// `vouch`: see [`connect_once`](Self::connect_once).
    pub(super) async fn open_one(
        self: &Arc<Self>,
        deadline: Instant,
        vouch: bool,
    ) -> Result<bool, Error> {
        if let Some(home) = self.home.get() {
            let pool = Arc::clone(self);
            match home
                .spawn(async move { pool.open_here(deadline, vouch).await })
                .await
            {
                Ok(opened) => return opened,
                // That runtime has shut down: open here instead.
                Err(e) if e.is_cancelled() => self.home.forget(),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        self.open_here(deadline, vouch).await
    }

    async fn open_here(&self, deadline: Instant, vouch: bool) -> Result<bool, Error> {
        if self.is_closed() {
            return Ok(false);
        }
        let Ok(_slot) = self.try_slot() else {
            return Ok(false);
        };
        // No room in the connection budget: skip, never wait for it nor take it from a
        // caller queued for it.
        let Ok(budget) = self.budget_if_free() else {
            return Ok(false);
        };
        let conn = self
            .open_retrying(deadline, vouch, budget)
            .await
            .inspect_err(
                |e| tracing::debug!(pool = %self.key, error = %e, "background connect failed"),
            )?;
        self.file_idle(conn);
        Ok(true)
    }

    /// Top up to `min_idle` (what the maintenance tick calls).
    /// While the breaker is not closed, probes do the trials and refills wait; while the
    /// pool is paused, refills wait too.
    pub(crate) async fn refill(self: &Arc<Self>) -> usize {
        if self.health.tripped() || self.pause.is_paused() {
            return 0;
        }
        self.warm(self.slots.min_idle()).await
    }

    /// Change the sizes at run time. Shrinking closes idle surplus now and checked-out
    /// surplus as it comes back.
    pub(crate) fn resize(&self, max_size: u32, min_idle: u32) {
        if self.slots.resize(max_size, min_idle) {
            self.reap();
        }
    }
}
