//! The reading of the results: the document's introduction, the reading of each missed
//! target, and the closing note. A reading says what the figures show (how the rounds
//! fall against the limit, the CPU per operation beside the peer's), never more than the
//! run measured; the figures are passed in.

use std::time::Duration;

use crate::hist::fmt_dur;
use crate::ratios::PerRound;
use crate::report::Report;

pub const INTRO: &str = "\
What poolwarden costs beside what you would use instead: bb8, deadpool, mobc, and a *floor* \
(a bare tokio `Semaphore` plus a `Mutex<VecDeque>`, what any pool's fast path costs at \
least). Every figure comes from one process and one run.\n\n\
How the targets are measured:\n\n\
- **Rounds.** Every wall-clock target is taken in rounds (3, or 5 for scenarios 1, 7 and 8), \
the pools taking turns within each round; the ratio is taken within each round and the \
target is marked on the **median of the per-round ratios**, shown with its spread: \
`1.02x (0.98–1.05, 3 rounds)`. Tables show the figures of all rounds together.\n\
- **Peers.** The best peer is the better of bb8 without test on checkout and deadpool with \
`RecyclingMethod::Fast` (bb8-redis without test on checkout for Redis); the other modes \
stay in the tables for reference, not as the best peer.\n\
- **poolwarden** runs its default `PoolConfig` (and default features) but for `max_size`, \
set to the case's size like every pool's, and is measured twice: without a metrics \
recorder, and as a second pool (another key) created while a Prometheus recorder is on \
(scraped every second). Every target is marked for both rows.\n\
- **CPU** figures count the whole bench process, all threads (`/proc/self/stat`); the \
servers are other processes.\n\
- **A loaded machine.** `cargo bench --bench load -- --hog N` runs the suite beside N busy \
loops and writes `docs/benchmarks-loaded.md` (under `target/bench-load/` with `--only`), \
leaving this file alone.\n\n\
Three benches:\n\n\
- `cargo bench --bench acquire`: criterion microbenchmark of scenario 1 (no-op connections).\n\
- `benches/instructions.sh`: instructions per acquire + release under \
`valgrind --tool=callgrind` (one task, 8 connections, a fixed loop at two lengths, the \
difference per iteration), noise-free where wall-clock ratios drift: it decides scenario \
1's 1-task case. A full run of the load bench counts them itself when valgrind and a fresh \
`instructions` binary (`cargo bench --bench instructions --no-run`) are there.\n\
- `cargo bench --bench load`: the ten load scenarios below (≈ 12 min); it rewrites this file \
and the charts in `docs/bench/`. `-- --only faults` runs scenario 9 (faults) alone, which \
always starts its own throwaway PostgreSQL server, since it restarts and freezes it. \
`cargo test --all-features --bench load -- --quick` runs every scenario for a moment (CI \
does), writing under `target/bench-load/` only. `--postgres-url URL` / `--redis-url URL` \
(or `POOLWARDEN_BENCH_PG_URL` / `POOLWARDEN_BENCH_REDIS_URL`) use your servers; otherwise \
throwaway ones are started with the test harness (`tests/common`).\n";

/// How the rounds fall against the limit: a consistent gap, or one within the noise.
fn rounds(r: &PerRound, limit: f64, at_most: bool) -> String {
    let v = r.values();
    let missed = v
        .iter()
        .filter(|&&x| if at_most { x > limit } else { x < limit })
        .count();
    let spread = format!("per-round {:.2}–{:.2}", r.min(), r.max());
    match v.len() {
        1 => "one round only (quick mode): indicative, not a verdict.".into(),
        n if missed == n => format!(
            "missed in all {n} rounds ({spread}): a consistent gap, not round-to-round noise."
        ),
        n => format!(
            "missed in {missed} of {n} rounds ({spread}): the gap is within the rounds' \
             spread, so more rounds or a quieter machine are needed to tell it from noise."
        ),
    }
}

/// CPU per operation beside the reference's (both the whole process's).
fn cpu(pw: Duration, other: Duration, who: &str) -> String {
    if pw > other {
        format!(
            " Process CPU per operation: {} with poolwarden, {} with {who}; with the client, \
             the pools and the server on 2 shared cores, CPU per operation turns into \
             throughput.",
            fmt_dur(pw),
            fmt_dur(other)
        )
    } else {
        format!(
            " Process CPU per operation is no higher than {who}'s ({} vs {}): the difference \
             is in waiting or scheduling, not in work done in this process.",
            fmt_dur(pw),
            fmt_dur(other)
        )
    }
}

pub fn noop(r: &PerRound, limit: f64, vs: &str) -> String {
    format!(
        "acquire + release took longer than with {vs}: {}",
        rounds(r, limit, true)
    )
}

pub fn recorder_cost(r: &PerRound) -> String {
    format!(
        "the pool created with the Prometheus recorder differs from the other only in its \
         metric handles: {}",
        rounds(r, 1.1, true)
    )
}

pub fn instructions(n: u64, best: u64, best_name: &str) -> String {
    format!(
        "callgrind counts {} more instructions per acquire + release than {best_name} \
         ({n} vs {best}); the counts repeat exactly, so this is work done, not noise.",
        n.saturating_sub(best)
    )
}

/// The instruction count with a Prometheus recorder (`n`) beside the same pool without one
/// (`plain`).
pub fn recorder_instructions(n: u64, plain: u64, best: u64, best_name: &str) -> String {
    format!(
        "{} Of them, {} are the recorder's: the pool's maintenance run sends each use it \
         recorded to the recorder's histogram (off the caller's path), and the Prometheus \
         exporter takes a histogram sample at about that cost each (a timestamp, an epoch \
         guard and a push into its bucket; `record_many` records one sample at a time); \
         without a recorder the pool counts {plain}.",
        instructions(n, best, best_name),
        n.saturating_sub(plain)
    )
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

pub fn pg_throughput(
    r: &PerRound,
    limit: f64,
    vs: &str,
    pw_cpu: Duration,
    vs_cpu: Duration,
) -> String {
    format!(
        "fewer operations per second than {vs}: {}{}",
        rounds(r, limit, false),
        cpu(pw_cpu, vs_cpu, vs)
    )
}

pub fn redis_throughput(r: &PerRound, pw_cpu: Duration, vs_cpu: Duration) -> String {
    format!(
        "fewer PINGs per second than bb8-redis without test on checkout: {}{}",
        rounds(r, 1.0, false),
        cpu(pw_cpu, vs_cpu, "bb8-redis")
    )
}

pub fn pg_fairness(fair: &PerRound) -> String {
    format!(
        "the least served worker did under half the median worker's operations: {}",
        rounds(fair, 0.5, false)
    )
}

pub fn pg_tail(r: &PerRound, vs: &str) -> String {
    format!("a longer p99.9 than {vs}'s: {}", rounds(r, 1.0, true))
}

pub fn pg_stall(max: Duration) -> String {
    format!(
        "the longest single operation took {} (the worst round's); on a machine with 2 cores \
         shared by the server and the client runtime, one stall decides the max, so it says \
         something about the pool only if it repeats across rounds and runs.",
        fmt_dur(max)
    )
}

pub fn open_wait(r: &PerRound, vs: &str) -> String {
    format!(
        "a longer p99 acquire wait than {vs}'s: {}",
        rounds(r, 1.0, true)
    )
}

pub fn saturated(max_waiters: usize) -> String {
    format!(
        "acquires arrived while {max_waiters} were already queued, so the backlog grew past \
         the bound: at this rate, on this machine, the pool fell behind the arrivals."
    )
}

pub fn cross_thread(r: &PerRound, min0: &PerRound) -> String {
    format!(
        "a longer p50 than bb8's: {} The `min_idle 0` pool, whose connection the caller \
         opened itself, measures {}.",
        rounds(r, 1.0, true),
        min0.shown()
    )
}

pub fn storm_time(r: &PerRound, vs: &str) -> String {
    format!(
        "a longer time to the 1,000th completion than {vs}: {}",
        rounds(r, 1.05, true)
    )
}

pub fn storm_connects(peak: usize, max_connecting: u32) -> String {
    format!(
        "{peak} connects were in progress at once where `max_connecting` allows \
         {max_connecting}: some connects were not held to the bound."
    )
}

/// The closing note: how to read each kind of miss this run saw.
pub fn closing(report: &Report) -> String {
    let missed: Vec<u8> = report
        .targets
        .iter()
        .filter(|t| !t.pass)
        .map(|t| t.scenario)
        .collect();
    let mut out = String::from("\n## Reading the misses\n\n");
    if missed.is_empty() {
        out.push_str("Every target was met in this run.\n");
        return out;
    }
    if missed.iter().any(|s| [1, 2, 3, 4, 7, 8].contains(s)) {
        out.push_str(
            "- **Wall-clock targets (1–4, 7, 8).** A miss in every round is a gap to find with \
             a profiler (`perf record` on `cargo bench --bench load -- --only N`) or, for \
             the 1-task acquire path, with instruction counts (`benches/instructions.sh`); a \
             miss in some rounds only is within the noise of this machine and needs more \
             rounds or an idle machine before it says anything about the pool.\n",
        );
    }
    if missed.contains(&5) {
        out.push_str(
            "- **Many keys (5).** The spread cost and the memory per pool are what scenario 5 \
             measured; its table shows how they grow with the number of keys.\n",
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
            "- **Storm (8).** More connects at once than `max_connecting` means some connect \
             path (an acquire's or a refill's) is not held to the bound.\n",
        );
    }
    out
}
