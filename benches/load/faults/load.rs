//! The workload of the fault scenario (tasks looping acquire, `SELECT 1`, release) and what
//! is read from its timeline: every success and every error is stamped, so stretches
//! without a success and the first success after a given instant are computed afterwards.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::pools::{AcquireError, Outcome, Pool};

/// After an error a task waits this long, as a client backing off would (the same for
/// every pool: without it, a pool that fails at once would spin).
pub const CLIENT_BACKOFF: Duration = Duration::from_millis(10);
/// The caller's budget for `SELECT 1`: long enough to ride out a 3 s freeze.
pub const QUERY_BUDGET: Duration = Duration::from_secs(5);
/// Each whole operation (acquire and query) is cut at this, whatever the pool does.
const OP_CAP: Duration = Duration::from_secs(10);

/// What a task saw, in microseconds since the run's start.
#[derive(Default)]
struct TaskLog {
    ok: Vec<u32>,
    errors: Vec<(u32, Kind)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Acquire(AcquireError),
    Query { timed_out: bool },
}

/// A running workload.
pub struct Load {
    t0: Instant,
    stop: Arc<AtomicBool>,
    in_query: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<TaskLog>>,
    /// A success seen since [`Load::start`] (read while the run goes on).
    last_ok_us: Arc<std::sync::atomic::AtomicU64>,
}

fn us(t0: Instant, t: Instant) -> u32 {
    t.saturating_duration_since(t0)
        .as_micros()
        .min(u128::from(u32::MAX)) as u32
}

impl Load {
    pub fn start(pool: &Pool, tasks: usize) -> Load {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let in_query = Arc::new(AtomicUsize::new(0));
        let last_ok_us = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let tasks = (0..tasks)
            .map(|_| {
                let (pool, stop, in_query, last) = (
                    pool.clone(),
                    stop.clone(),
                    in_query.clone(),
                    last_ok_us.clone(),
                );
                tokio::spawn(async move {
                    let mut log = TaskLog::default();
                    while !stop.load(Ordering::Relaxed) {
                        let outcome =
                            tokio::time::timeout(OP_CAP, pool.once(QUERY_BUDGET, &in_query)).await;
                        let at = us(t0, Instant::now());
                        let kind = match outcome {
                            Ok(Outcome::Ok) => {
                                log.ok.push(at);
                                last.fetch_max(u64::from(at), Ordering::Relaxed);
                                continue;
                            }
                            Ok(Outcome::Acquire(e)) => Kind::Acquire(e),
                            Ok(Outcome::Query(t)) => Kind::Query { timed_out: t },
                            Err(_) => Kind::Acquire(AcquireError::Other),
                        };
                        log.errors.push((at, kind));
                        tokio::time::sleep(CLIENT_BACKOFF).await;
                    }
                    log
                })
            })
            .collect();
        Load {
            t0,
            stop,
            in_query,
            tasks,
            last_ok_us,
        }
    }

    /// Microseconds since the start, for marks.
    pub fn mark(&self) -> u32 {
        us(self.t0, Instant::now())
    }

    /// The fault's instant: a mark, and the callers inside a query now.
    pub fn strike(&self) -> (u32, usize) {
        (self.mark(), self.in_query.load(Ordering::SeqCst))
    }

    /// `t` as a mark.
    pub fn mark_at(&self, t: Instant) -> u32 {
        us(self.t0, t)
    }

    /// Wait until a success is stamped at or after `mark`, at most `within`.
    pub async fn ok_since(&self, mark: u32, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.last_ok_us.load(Ordering::Relaxed) >= u64::from(mark) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    }

    /// Stop the tasks and gather their logs (a task still stuck after `within` is aborted
    /// and its log lost; the count of such tasks is returned).
    pub async fn finish(self, within: Duration) -> (Timeline, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let end = self.mark();
        let deadline = Instant::now() + within;
        let mut tl = Timeline {
            ok: Vec::new(),
            errors: Vec::new(),
            end,
        };
        let mut lost = 0;
        for mut h in self.tasks {
            match tokio::time::timeout_at(deadline, &mut h).await {
                Ok(Ok(log)) => {
                    tl.ok.extend(log.ok);
                    tl.errors.extend(log.errors);
                }
                _ => {
                    h.abort();
                    lost += 1;
                }
            }
        }
        tl.ok.sort_unstable();
        tl.errors.sort_unstable_by_key(|e| e.0);
        (tl, lost)
    }
}

/// Every success and error of a run, sorted, in µs since its start.
pub struct Timeline {
    ok: Vec<u32>,
    errors: Vec<(u32, Kind)>,
    /// When the tasks were told to stop.
    pub end: u32,
}

/// Errors seen by callers, by kind.
#[derive(Clone, Copy, Default)]
pub struct Errors {
    pub acquire: u64,
    pub acquire_timeouts: u64,
    pub circuit_open: u64,
    pub query: u64,
    pub query_timeouts: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.acquire + self.query
    }
}

impl Timeline {
    /// Successes in `[from, to)`.
    pub fn ok_between(&self, from: u32, to: u32) -> usize {
        self.ok.partition_point(|&t| t < to) - self.ok.partition_point(|&t| t < from)
    }

    /// Errors stamped in `[from, to)`.
    pub fn errors_between(&self, from: u32, to: u32) -> Errors {
        let mut e = Errors::default();
        for (_, k) in self.errors.iter().filter(|(t, _)| *t >= from && *t < to) {
            match k {
                Kind::Acquire(a) => {
                    e.acquire += 1;
                    match a {
                        AcquireError::Timeout => e.acquire_timeouts += 1,
                        AcquireError::CircuitOpen => e.circuit_open += 1,
                        AcquireError::Other => {}
                    }
                }
                Kind::Query { timed_out } => {
                    e.query += 1;
                    e.query_timeouts += u64::from(*timed_out);
                }
            }
        }
        e
    }

    /// The longest stretch in `[from, end]` without a success (µs), and where it began.
    pub fn longest_gap(&self, from: u32) -> (u32, u32) {
        let mut prev = from;
        let mut best = (0, from);
        for &t in self
            .ok
            .iter()
            .filter(|&&t| t >= from)
            .chain([self.end].iter())
        {
            if t.saturating_sub(prev) > best.0 {
                best = (t - prev, prev);
            }
            prev = prev.max(t);
        }
        best
    }

    /// The first success at or after `mark`.
    pub fn first_ok_after(&self, mark: u32) -> Option<u32> {
        let i = self.ok.partition_point(|&t| t < mark);
        self.ok.get(i).copied()
    }
}
