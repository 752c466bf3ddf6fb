//! The reading of the results: the document's introduction, the likely cause of each missed
//! target, and the closing note on what would fix it. Causes come from profiling the
//! scenarios (callgrind on the bench binary) and reading `src/pool/core.rs`; they are
//! worded for the figures this suite measures, which are passed in where they matter.

use std::time::Duration;

use crate::report::Report;

pub const INTRO: &str = "\
What poolwarden costs beside what you would use instead: bb8, deadpool, mobc, and a *floor* \
(a bare tokio `Semaphore` plus a `Mutex<VecDeque>`, what any pool's fast path costs at \
least). Every figure comes from one process and one run, the pools taking turns, so the \
ratios hold even on a noisy machine where absolute figures drift.\n\n\
Three benches:\n\n\
- `cargo bench --bench acquire`: criterion microbenchmark of scenario 1 (no-op connections).\n\
- `benches/instructions.sh`: instructions per acquire + release under \
`valgrind --tool=callgrind` (one task, 8 connections, a fixed loop at two lengths, the \
difference per iteration), noise-free where wall-clock ratios drift. Last counted \
2026-12-06 (instructions per operation): floor 361, **poolwarden 1,410**, poolwarden with a \
Prometheus recorder 1,451 (1.03x: the acquire path never calls the recorder), bb8 773 (767 \
without its test on checkout), deadpool 936. poolwarden counted 1,102 at the start of that \
day's work and 1,746 after the metrics, hooks, pause and budget work landed; building the \
acquire span only when TRACE is on and one clock read on the fast path brought it to 1,397 \
(1,410 with the dashboard feature on by default).\n\
- `cargo bench --bench load`: the ten load scenarios below (≈ 12 min); it rewrites this file \
and the charts in `docs/bench/`. `-- --only faults` runs scenario 9 (faults) alone, which \
always starts its own throwaway PostgreSQL server, since it restarts and freezes it. `cargo test --all-features --bench load -- --quick` runs \
every scenario for a moment (CI does), writing under `target/bench-load/` only. \
`--postgres-url URL` / `--redis-url URL` (or `POOLWARDEN_BENCH_PG_URL` / \
`POOLWARDEN_BENCH_REDIS_URL`) use your servers; otherwise throwaway ones are started with the \
test harness (`tests/common`).\n";

pub fn noop(tasks: usize, size: u32) -> String {
    let _ = size;
    if tasks == 1 {
        "the uncontended path does more than bb8's: `Instant::now()` is read twice per \
         acquire (start, `touch`) and once per release, plus the breaker and state loads, the \
         generation/expiry checks and ~8 relaxed counter updates on shared cache lines."
            .into()
    } else {
        "under contention every acquire that finds no permit goes through `wait_for_slot`: a \
         `timeout_at` (a timer-wheel entry registered and cancelled per wait), a \
         `Notify::notified()` registered for state changes, and a `select!` over both; bb8 \
         parks on a plain waiter. The counters (`in_use`, `served`, `waiters`, `live`, \
         `last_used_ms`) are separate atomics written by every acquire and release from both \
         threads, so their cache lines bounce."
            .into()
    }
}

pub fn many_keys_cost(spread: f64, hot: f64, bb8_spread: f64) -> String {
    format!(
        "spreading acquires over many pools touches a different `PoolShared` (≈ 1–2 KiB of \
         atomics, mutexes, semaphores) per operation, so the cost is cache misses: the hot-key \
         ratio is {hot:.2}x, the spread one {spread:.2}x, and bb8 cycling through as many \
         pools pays {bb8_spread:.2}x for the same reason. Nothing in poolwarden grows with the \
         number of keys on the acquire path; packing the atomics the acquire path writes into \
         one cache line would shrink the spread cost, not remove it."
    )
}

pub fn many_keys_memory(heap: f64) -> String {
    format!(
        "{:.1} KiB per pool: the `PoolShared` itself, the actor and its `actix::Supervisor` \
         wrapper with a mailbox, two interval timers (maintenance, probe), the supervisor's \
         entry (key, config copy, LRU node), the warmed connection, and the `PoolConfig` \
         copied into both the entry and the shared state.",
        heap / 1024.0
    )
}

pub fn pg_throughput() -> String {
    "not profiled; two suspects, both in poolwarden: (a) every wait for a slot goes \
     through `wait_for_slot`, which registers a `timeout_at` timer and a `Notify` per \
     waiter and polls a `select!` over both plus the semaphore on every wake-up, where \
     deadpool parks on the semaphore alone; (b) the PostgreSQL backend's wire tap parses \
     every message header from the server (transaction-status tracking for \
     reset-on-return): CPU per operation, which a run with server and client sharing 2 \
     cores turns into throughput, though one caller's latency shows no difference \
     (`reset_tracking_cost` in tests/postgres/cost.rs; scenario 7). (Warm-up connections no \
     longer run on the supervisor's thread: `src/pool/home.rs`.)"
        .into()
}

pub fn pg_fairness() -> String {
    "the tokio semaphore is FIFO, so a starved worker comes from scheduling (a worker whose \
     connection is driven on another thread waits on a cross-thread wake-up per query)."
        .into()
}

pub fn pg_tail(max: Duration) -> String {
    format!(
        "a single stall of {:.1} ms, on a machine with 2 cores shared by the server, the \
         client runtime and (when it happened) other builds: a scheduling hiccup rather than \
         the pool, unless it repeats across runs.",
        max.as_secs_f64() * 1e3
    )
}

pub fn cross_thread(default_vs_min0: f64) -> String {
    format!(
        "the connection a default pool uses was opened by the pool actor (warm-up to \
         `min_idle`); if its tokio-postgres driver task runs on another thread than the \
         caller, every query wakes that thread and back (the `min_idle 0` pool, whose \
         connection the caller opened, is {default_vs_min0:.2}x the default one's p50; \
         `src/pool/home.rs` runs the pool's own connects on the callers' runtime)."
    )
}

/// The closing note: what would fix each kind of miss that this run saw.
pub fn closing(report: &Report) -> String {
    let missed: Vec<u8> = report
        .targets
        .iter()
        .filter(|t| !t.pass)
        .map(|t| t.scenario)
        .collect();
    let mut out = String::from("\n## What would fix the misses\n\n");
    if missed.is_empty() {
        out.push_str("Every target was met in this run.\n");
        return out;
    }
    if missed.contains(&1) {
        out.push_str(
            "- **Acquire cost (1).** Take one `Instant::now()` per acquire and none on the \
             uncontended release; wait for a slot with the semaphore alone (one deadline \
             timer per acquire only when it actually has to wait, or `tokio::time::timeout` \
             around the whole wait rather than per loop) and wake on close by closing the \
             semaphore instead of a second `Notify`; group the hot counters into one cache \
             line per writer or derive `in_use` from the semaphore.\n",
        );
    }
    if missed.contains(&2) || missed.contains(&7) {
        out.push_str(
            "- **PostgreSQL closed loop (2, 7).** Make the wait for a slot a plain semaphore \
             wait (above), and measure the wire tap's CPU per message under load: if it \
             shows, parse only the `ReadyForQuery` frames' status byte and skip other frames \
             by length without copying. Tails (max vs p99) on a shared 2-core machine need \
             an idle machine and several runs before they say anything about the pool.\n",
        );
    }
    if missed.contains(&5) {
        out.push_str(
            "- **Many keys (5).** Share one `PoolConfig` per distinct config (`Arc`), keep \
             one timer per supervisor that walks pools due for maintenance instead of two \
             interval timers per actor, and keep the rarely-used parts of `PoolShared` \
             (breaker, leak tracker, restart log) behind one allocation.\n",
        );
    }
    if missed.contains(&9) {
        out.push_str(
            "- **Faults (9).** The misses left are not the pool's to fix: in a freeze longer \
             than the acquire timeout, the callers queued beyond the pool's size (24 of 32 \
             here) time out whatever the pool does (every peer's count is the same or \
             higher), and the longest stretch without a success is the freeze itself, so the \
             comparison with the best peer is decided by timer noise; errors in a restart \
             are the queries on connections the fault broke, which vary with how many were in \
             flight at the instant.\n",
        );
    }
    if missed.contains(&8) {
        out.push_str(
            "- **Storm (8).** Bound every connect, acquires' and refills', by `max_connecting`.\n",
        );
    }
    out
}
