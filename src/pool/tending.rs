//! A pool's entry in its supervisor's timetable (`crate::timetable`), owned by its actor:
//! when the pool is next due and what a run does. A run is the old maintenance tick
//! (`lifecycle.rs`: reaping, leak scan, figures for the recorder); a refill or a
//! background probe, which wait on the backend, are jobs the run hands the timetable's
//! task. (A probe under way when the actor restarts finishes: what it puts back is of an
//! old generation, closed by the next run or checkout.)
//!
//! The pool is due on its ticks (every `maintenance_interval`, on the timetable's grid)
//! while a run leaves something to watch; on the first tick at or after an idle
//! connection expires or times out; and at its next probe (each wait drawn in
//! `[interval/2, interval]`, as before). Otherwise not at all, until its bell rings.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::Instrument;

use super::shared::PoolShared;
use crate::backends::Backend;
use crate::error::Phase;
use crate::timetable::{grid, round_down, round_up, Job, Tend};

/// When the pool's next tick and probe are.
struct Plan {
    /// The next tick not yet passed (unrounded; ticks are `maintenance_interval` apart).
    tick: Instant,
    /// The next background probe (on the grid), if the pool probes.
    probe: Option<Instant>,
}

pub(crate) struct Tending<B: Backend> {
    shared: Arc<PoolShared<B>>,
    plan: Mutex<Plan>,
}

impl<B: Backend> Tending<B> {
    pub(crate) fn new(shared: Arc<PoolShared<B>>) -> Self {
        let plan = Mutex::new(Plan::starting(&shared, Instant::now()));
        Self { shared, plan }
    }

    /// A new incarnation (a restart, a revival): ticks count from now, the first probe is
    /// drawn afresh.
    pub(crate) fn restart(&self) {
        *self.plan.lock() = Plan::starting(&self.shared, Instant::now());
    }
}

impl Plan {
    fn starting<B: Backend>(shared: &PoolShared<B>, now: Instant) -> Self {
        let interval = shared.config.maintenance_interval;
        Self {
            tick: now + interval,
            probe: shared
                .config
                .probe_interval
                .map(|every| next_probe(now, every)),
        }
    }

    /// The next tick after `now`, rounded up to `unit`. Ticks keep their phase while the
    /// pool is watched; after a longer wait they count from `now`.
    fn tick_after(&mut self, now: Instant, interval: Duration, unit: Duration) -> Instant {
        if self.tick <= now {
            self.tick = if now - self.tick < interval {
                self.tick + interval
            } else {
                now + interval
            };
        }
        round_up(self.tick, unit)
    }

    /// The first tick at or after `at` (the next tick being `tick`), rounded up to `unit`.
    fn tick_at_or_after(tick: Instant, at: Instant, interval: Duration, unit: Duration) -> Instant {
        let unrounded = if at <= tick {
            tick
        } else {
            let step = u64::try_from(interval.as_nanos())
                .unwrap_or(u64::MAX)
                .max(1);
            let gap = u64::try_from((at - tick).as_nanos()).unwrap_or(u64::MAX);
            let ahead = gap.div_ceil(step).saturating_mul(step);
            tick.checked_add(Duration::from_nanos(ahead)).unwrap_or(at)
        };
        round_up(unrounded, unit)
    }
}

/// Top up to `min_idle`; what it opens is watched from then on.
pub(super) fn refill<B: Backend>(shared: Arc<PoolShared<B>>) -> Job {
    let span = debug_span(
        || tracing::debug_span!("poolwarden.refill", pool = %shared.key, pool_name = shared.observe.label(), opened = tracing::field::Empty),
    );
    in_span(span, async move {
        let opened = shared.refill().await;
        tracing::Span::current().record("opened", opened);
        shared.idle.trim(shared.slots.min_idle());
        shared.observe.bell().touch();
    })
}

/// One background probe (the probe itself allows one at a time). `may_open`: nothing was
/// idle, so it may open a connection, which must be watched from then on.
fn probe<B: Backend>(shared: Arc<PoolShared<B>>, may_open: bool) -> Job {
    let budget = shared.config.probe_timeout;
    let span = debug_span(
        || tracing::debug_span!("poolwarden.probe", pool = %shared.key, pool_name = shared.observe.label()),
    );
    in_span(span, async move {
        let open_within = budget.max(shared.config.connect_timeout);
        if let Err(reason) = shared.probe(budget, open_within).await {
            tracing::debug!(pool = %shared.key, %reason, "background probe failed");
        }
        if may_open {
            shared.observe.bell().touch();
        }
    })
}

/// A background job's span, built only when DEBUG is on. When it is off (the usual case)
/// no span is built and the job is not instrumented: with `tracing`'s `log` feature on
/// (actix-web turns it on) a disabled span still goes through the `log` fallback when it
/// is made, entered on each poll, left and dropped — measured under callgrind at about a
/// tenth of an idle pool's background probe.
fn debug_span(make: impl FnOnce() -> tracing::Span) -> Option<tracing::Span> {
    tracing::level_enabled!(tracing::Level::DEBUG).then(make)
}

/// `work` as a job, in `span` when there is one.
fn in_span(span: Option<tracing::Span>, work: impl Future<Output = ()> + Send + 'static) -> Job {
    match span {
        Some(span) => Box::pin(work.instrument(span)),
        None => Box::pin(work),
    }
}

/// The background probe after one at `now`: the wait is drawn in `[every/2, every]` so
/// that pools do not probe in lockstep, then moved back onto the grid.
fn next_probe(now: Instant, every: Duration) -> Instant {
    let half = every / 2;
    let wait = half + half.mul_f64(rand::random::<f64>());
    round_down(now + wait, grid(every), now)
}

impl<B: Backend> Tend for Tending<B> {
    fn tend(&self, now: Instant, jobs: &mut Vec<Job>) -> Option<Instant> {
        let shared = &self.shared;
        let bell = shared.observe.bell();
        if shared.is_closed() {
            // Closed or failed: nothing until a revival rings.
            bell.park(true);
            return None;
        }
        bell.run_starts();
        let upkeep = match std::panic::catch_unwind(AssertUnwindSafe(|| shared.maintain(now))) {
            Ok(upkeep) => upkeep,
            Err(payload) => {
                // `is_broken` is backend code: a panic there restarts the actor, as one
                // in a probe does (the restart rings the bell).
                shared.crashed(Phase::Probe, &*payload);
                return None;
            }
        };
        let interval = shared.config.maintenance_interval;
        let unit = grid(interval);
        let mut plan = self.plan.lock();
        let tick = plan.tick_after(now, interval, unit);
        if upkeep.refill {
            jobs.push(refill(Arc::clone(shared)));
        }
        if let (Some(every), Some(at)) = (shared.config.probe_interval, plan.probe) {
            if at <= now {
                plan.probe = Some(next_probe(now, every));
                jobs.push(probe(Arc::clone(shared), upkeep.idle == 0));
            }
        }
        // The tick of an expiry at or after the next probe cannot be the earliest (it is
        // never before the expiry): not worked out (the usual idle pool's case).
        let expiry = upkeep
            .due
            .filter(|&at| plan.probe.is_none_or(|probe| at < probe))
            .map(|at| Plan::tick_at_or_after(plan.tick, at, interval, unit));
        let next = [upkeep.watch.then_some(tick), expiry, plan.probe]
            .into_iter()
            .flatten()
            .min();
        bell.park(next.is_none_or(|at| at > tick));
        next
    }
}
