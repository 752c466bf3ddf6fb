//! [`PoolStats`]: one pool's figures, read from its parts without a message; the
//! maintenance tick's hand-over of the same figures to the metrics recorder; the leak
//! report.

use serde::Serialize;
use tokio::time::Instant;

use super::hot::PoolState;
use super::shared::PoolShared;
use crate::backends::Backend;
use crate::key::PoolKey;
use crate::observe::pool::Levels;
use crate::observe::{CloseCounts, LeakReport, Percentiles};
use crate::policy::breaker::BreakerState;

/// One pool's figures at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// The pool.
    pub key: PoolKey,
    /// The pool's label in metrics and traces: its registered name, else
    /// `key:<12 hex digits>`.
    pub name: String,
    /// Backend kind.
    pub backend: String,
    /// Idle connections.
    pub idle: usize,
    /// Checked-out connections.
    pub in_use: usize,
    /// Open connections (idle + checked out + being reset).
    pub live: usize,
    /// Connect attempts in progress.
    pub connecting: usize,
    /// Connects the pool lets run at once now: `max_connecting` while connects succeed;
    /// each failed connect that counts against the endpoint halves it (down to 4, or
    /// `max_connecting` when lower), each success widens it by one again (a slow start
    /// for a server coming back).
    pub connect_window: u32,
    /// Acquires waiting for a slot, or for a paused pool to resume.
    pub waiters: usize,
    /// Current `max_size`.
    pub max_size: u32,
    /// `max_size`, or what the server accepted after it refused a connection for
    /// capacity ("too many connections"); grows back as the server takes more.
    pub effective_size: u32,
    /// Current `min_idle`.
    pub min_idle: u32,
    /// `max_overflow`.
    pub max_overflow: u32,
    /// Connections opened since the pool started.
    pub created: u64,
    /// Connections closed since the pool started.
    pub closed: u64,
    /// Acquires served.
    pub served: u64,
    /// Acquires that timed out.
    pub timeouts: u64,
    /// Failed connect attempts.
    pub connect_errors: u64,
    /// Panics caught in backend code.
    pub panics: u64,
    /// Times the pool actor was restarted.
    pub restarts: u64,
    /// Actor incarnation; connections of older ones are closed on return.
    pub generation: u64,
    /// The pool no longer serves (evicted, reaped or shut down).
    pub closed_pool: bool,
    /// Restarted too often; refuses acquires until revived.
    pub failed: bool,
    /// The circuit breaker's state.
    pub breaker: BreakerState,
    /// Connections reported as leaked.
    pub leaks_reported: u64,
    /// Leaked connections whose slot was reclaimed.
    pub leaks_reclaimed: u64,
    /// Times the pool's credential was replaced by one a caller presented and a connect
    /// verified (connections of the old one are closed as they come back).
    pub credential_rotations: u64,
    /// Dedicated connections open ([`PoolHandle::dedicated`](crate::PoolHandle::dedicated)):
    /// not in `live`, not against `max_size`. Counted in `created` and `closed`.
    pub dedicated: usize,
    /// Acquires wait ([`PoolHandle::pause`](crate::PoolHandle::pause)).
    pub paused: bool,
    /// Hook runs that failed, timed out or panicked ([`Hooks`](crate::Hooks)); a
    /// `before_acquire` verdict other than `HandOut` and an `after_release` answering
    /// `false` are decisions, not failures.
    pub hook_failures: u64,
    /// Of `hook_failures`, runs that exceeded the hooks' timeout.
    pub hook_timeouts: u64,
    /// Of `hook_failures`, runs that panicked (caught: the connection is closed, the pool
    /// actor is not restarted, `panics` does not count them).
    pub hook_panics: u64,
    /// Connects that had to wait for the supervisor's connection budget
    /// (`max_connections_per_host`, `max_total_connections`): acquires, dedicated
    /// connections, credential verifications. Each counts once however long it waited.
    pub budget_waits: u64,
    /// Idle connections of this pool closed to make room in the connection budget for a
    /// connect of another pool (least recently used first).
    pub budget_evictions: u64,
    /// How long acquires waited for their connection, over the last 30 to 60 s.
    pub wait_time: Percentiles,
    /// How long connections were checked out, over the last 30 to 60 s (counted when
    /// they come back).
    pub use_time: Percentiles,
    /// Connections closed since the pool started, by reason (they add up to `closed`,
    /// but for a connection whose `before_close` hook is still running).
    pub closes: CloseCounts,
    /// Maintenance runs since the pool started: one per `maintenance_interval` while it
    /// has something to watch (idle or leak-tracked connections, waiters, a refill, recent
    /// acquires), one per background probe, one after something woke it; none while it
    /// has nothing due.
    pub maintenance_runs: u64,
}

impl<B: Backend> PoolShared<B> {
    pub(crate) fn stats(&self) -> PoolStats {
        let (hook_failures, hook_timeouts, hook_panics) = self.counters.hook_figures();
        let (budget_waits, budget_evictions) = self.counters.budget_figures();
        let (wait_time, use_time) = self.observe.percentiles(Instant::now(), self.hot.served());
        PoolStats {
            key: self.key,
            name: self.observe.label().to_string(),
            backend: self.connection.backend.clone(),
            idle: self.idle.len(),
            in_use: self.hot.in_use(),
            live: self.counters.live(),
            connecting: self.counters.connects_under_way(),
            connect_window: self.connects.width(),
            waiters: self.hot.waiters(),
            max_size: self.slots.max_size() as u32,
            effective_size: self.effective_size() as u32,
            min_idle: self.slots.min_idle() as u32,
            max_overflow: self.config.max_overflow,
            created: self.counters.created(),
            closed: self.counters.closed_total(),
            served: self.hot.served(),
            timeouts: self.counters.timeouts(),
            connect_errors: self.counters.connect_errors(),
            panics: self.counters.panics(),
            restarts: self.counters.restarts(),
            generation: self.incarnation.generation(),
            closed_pool: !self.hot.is_open(),
            failed: self.hot.state() == PoolState::Failed,
            breaker: self.health.state(),
            leaks_reported: self.leaks.reported(),
            leaks_reclaimed: self.leaks.reclaimed(),
            credential_rotations: self.credential.rotations(),
            dedicated: self.counters.dedicated(),
            paused: self.pause.is_paused(),
            hook_failures,
            hook_timeouts,
            hook_panics,
            budget_waits,
            budget_evictions,
            wait_time,
            use_time,
            closes: self.observe.close_counts(),
            maintenance_runs: self.observe.bell().runs(),
        }
    }

    /// The maintenance tick's part in observability: rotate the percentile windows, pass
    /// their new durations to the recorder's histograms and set the gauges (connection
    /// counts, pending requests, sizes) from the figures the pool tracks anyway, so the
    /// acquire path never touches a recorder.
    pub(crate) fn observe_tick(&self, now: Instant, idle: usize) {
        self.observe.tick(
            now,
            Levels {
                idle,
                used: self.hot.in_use(),
                pending: self.hot.waiters(),
                max_size: self.slots.max_size(),
                min_idle: self.slots.min_idle(),
                max_overflow: self.config.max_overflow as usize,
            },
            self.hot.served(),
        );
    }

    /// The connections held past the leak threshold now (empty when leak detection is
    /// off).
    pub(crate) fn leaks(&self) -> Vec<LeakReport> {
        self.leaks.held(Instant::now())
    }
}
