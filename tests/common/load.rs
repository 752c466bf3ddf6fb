//! A closed-loop load on a pool, for the tests against real servers: `workers` tasks, each
//! acquiring a connection, running one operation on it, releasing it, and starting over
//! until the load is stopped. Every op is recorded (when it started and ended, which worker
//! ran it, whether it started after [`Load::mark`], and how it ended), so each test can
//! tally what it needs and keep its own bounds.
//!
//! ```ignore
//! let load = Load::start(&pool, 8, Pace::backoff(ms(10)), |_worker, conn| async move {
//!     conn.query_one("SELECT 1", &[]).await.map(drop).map_err(|e| e.to_string())
//! });
//! assert!(load.more_ok(200, secs(30)).await, "the load never got going");
//! // … restart the server …
//! let ops = load.finish(secs(15)).await; // panics if a worker hung
//! let t = Tally::of(&ops);
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poolwarden::PooledConnection;
use poolwarden::{Backend, BackendError, BackendErrorKind, Error, Phase, PoolHandle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a worker paces itself after a failure.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Pause after a failed acquire or operation: a client backs off instead of spinning
    /// on a failing pool.
    pub backoff: Duration,
    /// After `CircuitOpen`, wait for the `retry_in` it names (at least `backoff`) instead.
    pub honour_retry_in: bool,
}

impl Pace {
    /// Pause `backoff` after any failure.
    pub fn backoff(backoff: Duration) -> Pace {
        Pace {
            backoff,
            honour_retry_in: false,
        }
    }

    /// Come back when an open breaker says (at least `min` later); pause `min` after any
    /// other failure.
    pub fn retry_in(min: Duration) -> Pace {
        Pace {
            backoff: min,
            honour_retry_in: true,
        }
    }
}

/// How one op ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ok,
    /// The acquire failed.
    Acquire(Error),
    /// A connection was handed out but the operation on it failed.
    Op(String),
}

/// One acquire + operation + release.
#[derive(Debug, Clone)]
pub struct Op {
    pub worker: usize,
    pub started: Instant,
    pub ended: Instant,
    /// The op started after [`Load::mark`].
    pub after_mark: bool,
    pub outcome: Outcome,
}

impl Op {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok)
    }
}

/// Counts over a set of ops.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: usize,
    /// Successful ops that started after [`Load::mark`].
    pub ok_after_mark: usize,
    /// Operations that failed on a connection the pool handed out.
    pub op_errors: usize,
    /// Failed acquires other than `CircuitOpen`.
    pub acquire_errors: usize,
    /// Acquires refused at once by an open breaker.
    pub circuit_open: usize,
    /// The longest op (acquire + operation).
    pub longest: Duration,
    /// The first operation error, for messages.
    pub first_op_error: Option<String>,
}

impl Tally {
    pub fn of<'a>(ops: impl IntoIterator<Item = &'a Op>) -> Tally {
        let mut t = Tally::default();
        for op in ops {
            t.longest = t.longest.max(op.ended - op.started);
            match &op.outcome {
                Outcome::Ok => {
                    t.ok += 1;
                    t.ok_after_mark += usize::from(op.after_mark);
                }
                Outcome::Acquire(Error::CircuitOpen { .. }) => t.circuit_open += 1,
                Outcome::Acquire(_) => t.acquire_errors += 1,
                Outcome::Op(e) => {
                    t.op_errors += 1;
                    t.first_op_error.get_or_insert_with(|| e.clone());
                }
            }
        }
        t
    }

    /// One tally per worker, in worker order.
    pub fn per_worker(ops: &[Op], workers: usize) -> Vec<Tally> {
        (0..workers)
            .map(|w| Tally::of(ops.iter().filter(|o| o.worker == w)))
            .collect()
    }

    /// Failed acquires of any kind, `CircuitOpen` included.
    pub fn all_acquire_errors(&self) -> usize {
        self.acquire_errors + self.circuit_open
    }
}

/// The failed acquires of `ops` for which `expected` is false, as text.
pub fn unexpected_acquire_errors(ops: &[Op], expected: impl Fn(&Error) -> bool) -> Vec<String> {
    ops.iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Acquire(e) if !expected(e) => Some(e.to_string()),
            _ => None,
        })
        .collect()
}

/// An acquire error caused by the server being down, starting up or cut off: a connect
/// (or, in `phases`, probe) error or timeout, or an open breaker, whose backend error (if
/// any) is a refused or closed connection or a timeout.
pub fn is_outage(err: &Error, phases: &[Phase]) -> bool {
    let kind = match err {
        Error::Backend { phase, source, .. } if phases.contains(phase) => Some(source.kind()),
        Error::Timeout {
            phase, last_error, ..
        } if phases.contains(phase) => last_error.as_ref().map(BackendError::kind),
        Error::CircuitOpen { last_error, .. } => last_error.as_ref().map(BackendError::kind),
        _ => return false,
    };
    matches!(
        kind,
        None | Some(
            BackendErrorKind::Connect | BackendErrorKind::Closed | BackendErrorKind::Timeout
        )
    )
}

struct Shared {
    stop: AtomicBool,
    marked: AtomicBool,
    ok: AtomicU64,
    /// Failed acquires of any kind, so far.
    acquire_errors: AtomicU64,
    op_errors: AtomicU64,
    /// Per worker: successes of ops that started after the mark.
    ok_after_mark: Vec<AtomicUsize>,
    ops: parking_lot::Mutex<Vec<Op>>,
}

/// A running closed-loop load. Dropping it without [`finish`](Self::finish) stops the
/// workers at their next op.
pub struct Load {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Start `workers` tasks on `pool`, each running `op(worker, connection)` on a fresh
    /// checkout until stopped. `op` owns the connection (dropping it releases it) and
    /// answers `Err(description)` when the operation failed.
    pub fn start<B, F, Fut>(pool: &PoolHandle<B>, workers: usize, pace: Pace, op: F) -> Load
    where
        B: Backend,
        F: Fn(usize, PooledConnection<B>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            marked: AtomicBool::new(false),
            ok: AtomicU64::new(0),
            acquire_errors: AtomicU64::new(0),
            op_errors: AtomicU64::new(0),
            ok_after_mark: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            ops: parking_lot::Mutex::new(Vec::new()),
        });
        let op = Arc::new(op);
        let workers = (0..workers)
            .map(|worker| {
                let (pool, shared, op) = (pool.clone(), shared.clone(), op.clone());
                tokio::spawn(async move {
                    while !shared.stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let after_mark = shared.marked.load(Ordering::Acquire);
                        let outcome = match pool.acquire().await {
                            Ok(conn) => match op(worker, conn).await {
                                Ok(()) => Outcome::Ok,
                                Err(e) => Outcome::Op(e),
                            },
                            Err(e) => Outcome::Acquire(e),
                        };
                        let pause = match &outcome {
                            Outcome::Ok => {
                                shared.ok.fetch_add(1, Ordering::Relaxed);
                                if after_mark {
                                    shared.ok_after_mark[worker].fetch_add(1, Ordering::Relaxed);
                                }
                                Duration::ZERO
                            }
                            Outcome::Acquire(Error::CircuitOpen { retry_in, .. })
                                if pace.honour_retry_in =>
                            {
                                shared.acquire_errors.fetch_add(1, Ordering::Relaxed);
                                (*retry_in).max(pace.backoff)
                            }
                            Outcome::Acquire(_) => {
                                shared.acquire_errors.fetch_add(1, Ordering::Relaxed);
                                pace.backoff
                            }
                            Outcome::Op(_) => {
                                shared.op_errors.fetch_add(1, Ordering::Relaxed);
                                pace.backoff
                            }
                        };
                        shared.ops.lock().push(Op {
                            worker,
                            started,
                            ended: Instant::now(),
                            after_mark,
                            outcome,
                        });
                        if pause.is_zero() {
                            tokio::task::yield_now().await;
                        } else {
                            tokio::time::sleep(pause).await;
                        }
                    }
                })
            })
            .collect();
        Load { shared, workers }
    }

    /// Successful ops so far.
    pub fn ok(&self) -> u64 {
        self.shared.ok.load(Ordering::Relaxed)
    }

    /// Failures so far: (failed acquires of any kind, failed operations).
    pub fn errors(&self) -> (u64, u64) {
        (
            self.shared.acquire_errors.load(Ordering::Relaxed),
            self.shared.op_errors.load(Ordering::Relaxed),
        )
    }

    /// Wait until `n` ops have succeeded in all.
    pub async fn reached(&self, n: u64, within: Duration) -> bool {
        super::eventually(within, || async { (self.ok() >= n).then_some(()) })
            .await
            .is_some()
    }

    /// Wait until `n` more ops than now have succeeded.
    pub async fn more_ok(&self, n: u64, within: Duration) -> bool {
        self.reached(self.ok() + n, within).await
    }

    /// From now on, ops count as started after the mark (e.g. after a restart).
    pub fn mark(&self) {
        self.shared.marked.store(true, Ordering::Release);
    }

    /// Wait until every worker has had `n` successful ops that started after the mark.
    pub async fn each_worker_ok_after_mark(&self, n: usize, within: Duration) -> bool {
        let all = || {
            self.shared
                .ok_after_mark
                .iter()
                .all(|c| c.load(Ordering::Relaxed) >= n)
        };
        super::eventually(within, || async { all().then_some(()) })
            .await
            .is_some()
    }

    /// When the first successful op that ended after `after` ended.
    pub fn first_ok_after(&self, after: Instant) -> Option<Instant> {
        self.shared
            .ops
            .lock()
            .iter()
            .filter(|o| o.is_ok() && o.ended > after)
            .map(|o| o.ended)
            .min()
    }

    /// The restart-under-load check the Redis and MySQL tests share: once `ready` ops have
    /// succeeded, run the blocking `restart`, then require every worker to succeed
    /// `ok_each` times afterwards within `within`, no acquire to fail but on the open
    /// breaker, and no worker to be refused by it more than 20 times (each trip, 1 s and
    /// doubling, costs a worker about one fast failure). Answers every op and what
    /// `restart` answered.
    pub async fn across_restart<R: Send + 'static>(
        self,
        ready: u64,
        restart: impl FnOnce() -> R + Send + 'static,
        ok_each: usize,
        within: Duration,
    ) -> (Vec<Op>, R) {
        assert!(
            self.reached(ready, Duration::from_secs(10)).await,
            "the load never got going"
        );
        let answer = tokio::task::spawn_blocking(restart).await.unwrap();
        self.mark();
        let recovered = self.each_worker_ok_after_mark(ok_each, within).await;
        let workers = self.workers.len();
        let ops = self.finish(Duration::from_secs(10)).await;
        assert!(recovered, "every worker recovered before the deadline");
        let failed = unexpected_acquire_errors(&ops, |e| matches!(e, Error::CircuitOpen { .. }));
        assert!(
            failed.is_empty(),
            "no acquire failed but on the open breaker: {failed:?}"
        );
        for (w, t) in Tally::per_worker(&ops, workers).iter().enumerate() {
            assert!(
                t.circuit_open <= 20,
                "{} fast failures for worker {w}",
                t.circuit_open
            );
        }
        (ops, answer)
    }

    /// Stop the workers; each must finish within `within` (a hung worker fails the test).
    /// Answers every op, in the order they ended.
    pub async fn finish(mut self, within: Duration) -> Vec<Op> {
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in std::mem::take(&mut self.workers) {
            tokio::time::timeout(within, w)
                .await
                .expect("a worker hung")
                .expect("a worker panicked");
        }
        std::mem::take(&mut *self.shared.ops.lock())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}
