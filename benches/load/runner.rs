//! Load drivers: a counting loop (no per-operation timing, for nanosecond-scale work), a
//! closed loop with a latency histogram per worker, and an open loop at a fixed arrival rate
//! whose latencies are measured from each operation's *intended* start (free of coordinated
//! omission).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::peers::Op;
use crate::ratios::PerRound;
use crate::{cpu, hist};

/// `tasks` tasks run `op` back to back for `window` (after `warmup`). Answers wall time per
/// operation with every task running, as criterion's `iter_custom` would.
pub async fn count_loop<P: Op>(op: &P, tasks: usize, warmup: Duration, window: Duration) -> f64 {
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (op, recording, stop, done) =
                (op.clone(), recording.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut counting = false;
                loop {
                    // Checked every 64 operations: cheap, and the same for every peer.
                    for _ in 0..64 {
                        op.run().await;
                    }
                    // An uncontended acquire never returns `Pending`: without this, tasks
                    // that never yield would starve the runtime's timer (and the stop flag).
                    tokio::task::yield_now().await;
                    if counting {
                        n += 64;
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    counting = recording.load(Ordering::Relaxed);
                }
                done.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    tokio::time::sleep(warmup).await;
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.expect("bench task panicked");
    }
    let elapsed = t0.elapsed();
    let n = done.load(Ordering::Relaxed).max(1);
    elapsed.as_nanos() as f64 / n as f64
}

/// What a closed-loop run measured.
#[derive(Clone)]
pub struct Closed {
    pub hist: Histogram<u64>,
    pub ops: u64,
    pub elapsed: Duration,
    pub per_worker: Vec<u64>,
    /// Operations whose acquire failed (not in the histogram).
    pub errors: u64,
    /// CPU seconds of the whole process (all threads) over the timed window.
    pub cpu: f64,
}

impl Closed {
    pub fn empty(workers: usize) -> Self {
        Self {
            hist: hist::new(),
            ops: 0,
            elapsed: Duration::ZERO,
            per_worker: vec![0; workers],
            errors: 0,
            cpu: 0.0,
        }
    }

    pub fn merge(&mut self, other: Closed) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.ops += other.ops;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
        for (a, b) in self.per_worker.iter_mut().zip(other.per_worker) {
            *a += b;
        }
    }

    pub fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Process CPU time per operation.
    pub fn cpu_per_op(&self) -> Duration {
        Duration::from_secs_f64(self.cpu / self.ops.max(1) as f64)
    }

    /// Operations of the least served worker over the median one's.
    pub fn fairness_ratio(&self) -> f64 {
        let (min, med) = self.fairness();
        min as f64 / med.max(1) as f64
    }

    /// (fewest, median) operations of one worker.
    pub fn fairness(&self) -> (u64, u64) {
        let mut v = self.per_worker.clone();
        v.sort_unstable();
        (
            v.first().copied().unwrap_or(0),
            v.get(v.len() / 2).copied().unwrap_or(0),
        )
    }
}

/// `workers` tasks run `op` back to back; operations that end inside `window` (after
/// `warmup`) are timed and counted.
pub async fn closed_loop<P: Op>(
    op: &P,
    workers: usize,
    warmup: Duration,
    window: Duration,
) -> Closed {
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (op, recording, stop) = (op.clone(), recording.clone(), stop.clone());
            tokio::spawn(async move {
                let mut h = hist::new();
                let (mut n, mut errors) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    // Only operations that start inside the window count: one begun in the
                    // warm-up (say, waiting out the pool's first connects to a cold server)
                    // would carry warm-up time into the timed figures.
                    let timed = recording.load(Ordering::Relaxed);
                    let t = Instant::now();
                    let ok = op.run().await.is_some();
                    let d = t.elapsed();
                    if timed && !stop.load(Ordering::Relaxed) {
                        if ok {
                            hist::record(&mut h, d);
                            n += 1;
                        } else {
                            errors += 1;
                        }
                    }
                }
                (h, n, errors)
            })
        })
        .collect();
    tokio::time::sleep(warmup).await;
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let cpu0 = cpu::process_seconds();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed();
    let mut out = Closed::empty(workers);
    out.elapsed = elapsed;
    out.cpu = cpu::process_seconds() - cpu0;
    for (i, h) in handles.into_iter().enumerate() {
        let (hw, n, errors) = h.await.expect("bench task panicked");
        out.hist.add(&hw).expect("same histogram bounds");
        out.ops += n;
        out.errors += errors;
        out.per_worker[i] = n;
    }
    out
}

/// What an open-loop run measured.
pub struct Open {
    /// From the intended start to holding a connection.
    pub wait: Histogram<u64>,
    /// From the intended start to the end of the operation.
    pub latency: Histogram<u64>,
    pub issued: u64,
    pub completed: u64,
    /// Operations whose acquire failed (e.g. `PoolSaturated`).
    pub errors: u64,
}

/// Start operations at `rate` per second for `duration`, each in its own task, whatever
/// the previous ones are doing. Waits for the stragglers (at most `drain`).
pub async fn open_loop<P: Op>(op: &P, rate: f64, duration: Duration, drain: Duration) -> Open {
    let acc = Arc::new(Mutex::new((hist::new(), hist::new(), 0u64, 0u64)));
    let start = Instant::now();
    let mut issued = 0u64;
    let mut tasks = Vec::new();
    loop {
        let now = Instant::now();
        let since = now - start;
        if since >= duration {
            break;
        }
        let due = (since.as_secs_f64() * rate) as u64;
        while issued < due {
            let intended = start + Duration::from_secs_f64(issued as f64 / rate);
            let (op, acc) = (op.clone(), acc.clone());
            tasks.push(tokio::spawn(async move {
                let began = Instant::now();
                let acquired = op.run().await;
                let end = Instant::now();
                let mut a = acc.lock().expect("histograms");
                let Some(acquired) = acquired else {
                    a.3 += 1;
                    return;
                };
                let wait = (began - intended) + acquired;
                hist::record(&mut a.0, wait);
                hist::record(&mut a.1, end - intended);
                a.2 += 1;
            }));
            issued += 1;
        }
        // The timer's resolution is 1 ms: operations due meanwhile start in a burst.
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let _ = tokio::time::timeout(drain, futures::future::join_all(tasks)).await;
    let (wait, latency, completed, errors) = {
        let a = acc.lock().expect("histograms");
        (a.0.clone(), a.1.clone(), a.2, a.3)
    };
    Open {
        wait,
        latency,
        issued,
        completed,
        errors,
    }
}

/// A figure of each round of one pool's runs.
pub fn per_round(runs: &[Closed], f: impl Fn(&Closed) -> f64) -> PerRound {
    PerRound::new(runs.iter().map(f).collect())
}

/// All of one pool's rounds together (for the tables' latency and throughput figures).
pub fn merged(runs: &[Closed]) -> Closed {
    let mut all = Closed::empty(runs.first().map_or(0, |r| r.per_worker.len()));
    for r in runs {
        all.merge(r.clone());
    }
    all
}

/// The table of a closed-loop comparison, one row per pool (the first is poolwarden, the
/// reference of the ratio column), with a progress line per pool. `runs[i]` holds pool
/// `i`'s rounds: the figures are of all rounds together, the ratio column is the median of
/// the per-round ratios with their spread.
pub fn closed_table(
    ctx: &crate::Ctx,
    workers: usize,
    size: u32,
    names: &[&str],
    runs: &[Vec<Closed>],
) -> crate::report::Table {
    use crate::hist::fmt_dur;
    use crate::report::{thousands, Table};
    let mut table = Table::new(
        format!("{workers} workers on {size} connections"),
        &[
            "pool",
            "ops/s",
            "vs poolwarden (median of rounds)",
            "p50",
            "p99",
            "p99.9",
            "max",
            "worker ops min / median",
            "CPU per op (process)",
            "errors",
        ],
    );
    let pw_tp = per_round(&runs[0], Closed::throughput);
    for (i, (name, rounds)) in names.iter().zip(runs).enumerate() {
        let r = merged(rounds);
        let s = hist::summary(&r.hist);
        let (min, med) = r.fairness();
        ctx.progress(&format!(
            "  {workers}/{size} {name}: {} ops/s, p50 {}, p99 {}, max {}",
            thousands(r.throughput()),
            fmt_dur(s.p50),
            fmt_dur(s.p99),
            fmt_dur(s.max)
        ));
        let vs = if i == 0 {
            "1.00x".to_string()
        } else {
            PerRound::ratio(&per_round(rounds, Closed::throughput), &pw_tp).shown()
        };
        table.row(vec![
            name.to_string(),
            thousands(r.throughput()),
            vs,
            fmt_dur(s.p50),
            fmt_dur(s.p99),
            fmt_dur(s.p999),
            fmt_dur(s.max),
            format!("{} / {}", thousands(min as f64), thousands(med as f64)),
            fmt_dur(r.cpu_per_op()),
            r.errors.to_string(),
        ]);
    }
    table
}
