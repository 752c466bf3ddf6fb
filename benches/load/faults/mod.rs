//! Scenario 9: the same faults, side by side, for poolwarden, bb8 (with and without test
//! on checkout) and deadpool (Fast recycling): what callers see (errors by kind), how long
//! service stops, how soon it is back once the server is, and how many connects each pool
//! makes meanwhile (and how many at once).
//!
//! Every fault is run once per pool, in turns, on one throwaway server of the scenario's
//! own (started with `tests/common`, restarted and frozen by it): a fresh pool, a healthy
//! period, the fault, a period after it. See [`setup`] for the settings and measures.

mod goals;
mod inject;
mod load;
mod pools;
mod scram;

use std::sync::Arc;
use std::time::Duration;

use crate::common::{PgOptions, PgServer};
use crate::hist::fmt_dur;
use crate::report::{thousands, Section, Table, Target};
use crate::Ctx;

use inject::{Env, Fault};
use load::{Errors, Load, CLIENT_BACKOFF, QUERY_BUDGET};
use pools::{Endpoint, NAMES};

pub const ID: u8 = 9;
pub const TITLE: &str = "Faults: restarts, killed backends, a connection limit, a frozen server";
const TASKS: usize = 32;
const ROLE: &str = "bench_faults";
/// Superuser over the Unix socket without a password (the harness's admin connections),
/// every TCP login (the pools, the polling client) with SCRAM.
const HBA: &str = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";

/// One pool through one fault.
pub struct Run {
    pub errors: Errors,
    /// Errors before the fault (a healthy period should have none).
    pub pre_fault_errors: u64,
    pub in_flight: usize,
    pub longest: Duration,
    /// Seconds from "server back" to the pool's first success (negative: the pool served
    /// before the polling client's connect completed); `None`: no success in the window.
    pub back_to_ok: Option<f64>,
    /// Successes while the fault held (faults that hold).
    pub ok_during: Option<usize>,
    pub connects: u64,
    pub connects_failed: u64,
    pub peak: usize,
    pub healthy: f64,
    pub note: String,
}

struct Durations {
    warm: Duration,
    before: Duration,
    after: Duration,
    /// The longest wait for a first success after the server is back.
    cap: Duration,
    hold_limit: Duration,
    hold_freeze: Duration,
}

fn setup(ctx: &Ctx, d: &Durations, iterations: u32) -> String {
    format!(
        "{TASKS} tasks loop acquire, `simple_query(\"SELECT 1\")` (the caller's budget {} s), \
         release; after an error a task waits {} ms. Every pool: max_size {}, min_idle {} \
         (deadpool has none: it fills on demand), acquire timeout {} s (bb8 \
         `connection_timeout`, deadpool `wait_timeout`), connect timeout {} s (deadpool \
         `create_timeout`; bb8's connect wrapped in a timeout, tokio-postgres' own bounding \
         only the TCP connect), probe timeout {} s (poolwarden `probe_timeout`, bb8's test on \
         checkout wrapped in a timeout, deadpool `recycle_timeout`); poolwarden otherwise its \
         default `PoolConfig`, bb8 0.9 otherwise its defaults. The pools log in over TCP as \
         a role with a SCRAM-SHA-256 password ({iterations} iterations{}), no TLS. Each fault \
         runs once per pool, in turns, with a fresh pool: {} s warm-up, {} s healthy, the \
         fault, then until the pool's first success after the server is back (at most {} s) \
         and {} s more. A restart is `pg_ctl stop -m <mode>` then `pg_ctl start` (what \
         `pg_ctl restart` does); \"back\" is when an independent client, connecting afresh \
         every 5 ms from the end of the stop, first gets a session; for the termination it is the \
         fault's instant (the server stays up). The connection limit is \
         `ALTER ROLE … CONNECTION LIMIT 2` with the pool's backends beyond its 2 oldest \
         terminated, for {} s (then the limit is lifted: \"back\"). The freeze is SIGSTOP of \
         the postmaster and all its processes for {} s, then SIGCONT (\"back\"). \
         Measured: caller errors after the fault's instant by kind (acquire, of which \
         timeouts; query, of which timeouts; poolwarden's `CircuitOpen`); callers inside their \
         own `SELECT 1` (not a pool's test) at the fault's instant; the longest stretch without any success from the \
         end of the warm-up to the end of the run; connects started from the fault on (and \
         how many failed), counted by a wrapper around each pool's connect (poolwarden's \
         `Backend::connect`, bb8's `ManageConnection::connect`, deadpool's \
         `Manager::create`), which also gives the most connects in progress at once over \
         the whole run; successes per second in the healthy period. The best peer of a \
         fault is the one with the fewest caller errors (then the shortest stretch without \
         a success) among those whose healthy throughput, the mean over the five healthy \
         periods, is ≥ 0.95x poolwarden's (every peer when none is).{}",
        QUERY_BUDGET.as_secs(),
        CLIENT_BACKOFF.as_millis(),
        pools::MAX_SIZE,
        pools::MIN_IDLE,
        pools::ACQUIRE_TIMEOUT.as_secs(),
        pools::CONNECT_TIMEOUT.as_secs(),
        pools::PROBE_TIMEOUT.as_secs(),
        if ctx.quick {
            ": quick mode lowers it from the server's default 4,096 so that a debug build's \
             connects are not all hashing"
        } else {
            ", the server's default"
        },
        d.warm.as_secs_f64(),
        d.before.as_secs_f64(),
        d.cap.as_secs_f64(),
        d.after.as_secs_f64(),
        d.hold_limit.as_secs_f64(),
        d.hold_freeze.as_secs_f64(),
        if ctx.quick {
            " Quick mode: every period is short, so the figures are indicative only (a \
             freeze shorter than the acquire timeout, for one, times nobody out)."
        } else {
            ""
        }
    )
}

pub async fn run(ctx: &Ctx, targets: &mut Vec<Target>) -> Section {
    let Some(pg) = PgServer::start_with(PgOptions {
        hba: Some(HBA.into()),
        ..PgOptions::default()
    }) else {
        return Section::skipped(
            ID,
            TITLE,
            "PostgreSQL is not installed (see the SKIP line above)",
        );
    };
    let d = Durations {
        warm: ctx.dur(0.5, 0.15),
        before: ctx.dur(3.0, 0.4),
        after: ctx.dur(3.0, 0.4),
        cap: ctx.dur(10.0, 3.0),
        hold_limit: ctx.dur(5.0, 0.8),
        hold_freeze: ctx.dur(3.0, 0.8),
    };
    let iterations = if ctx.quick { 16 } else { 4096 };
    let password = format!("bench-{:016x}", rand::random::<u64>());
    let admin = pg.superuser_client().await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {ROLE} LOGIN PASSWORD '{}'",
            scram::verifier(&password, iterations)
        ))
        .await
        .expect("create the bench role");
    drop(admin);
    let env = Env {
        ep: Endpoint {
            port: pg.port(),
            user: ROLE.into(),
            password,
        },
        pg: Arc::new(pg),
    };
    let mut section = Section::new(ID, TITLE, setup(ctx, &d, iterations));
    let mut all: Vec<Vec<Run>> = Vec::new();
    for (f, fault) in Fault::ALL.into_iter().enumerate() {
        let mut runs = Vec::new();
        for (which, name) in NAMES.iter().enumerate() {
            let r = run_one(&env, fault, f, which, &d).await;
            ctx.progress(&format!(
                "  {}, {}: {} errors ({} acquire, {} query, {} CircuitOpen), {} in flight, \
                 longest without success {}, back → ok {}, {} connects, peak {}; {}",
                fault.short(),
                name,
                r.errors.total(),
                r.errors.acquire,
                r.errors.query,
                r.errors.circuit_open,
                r.in_flight,
                fmt_dur(r.longest),
                fmt_back(r.back_to_ok),
                r.connects,
                r.peak,
                r.note
            ));
            runs.push(r);
        }
        all.push(runs);
    }
    // Each pool's healthy throughput: the mean of its healthy periods, one per fault (a
    // single period is too short to rank pools within 5%).
    let healthy: Vec<f64> = (0..NAMES.len())
        .map(|i| all.iter().map(|runs| runs[i].healthy).sum::<f64>() / all.len() as f64)
        .collect();
    section.tables.push(healthy_table(&healthy));
    for (fault, runs) in Fault::ALL.into_iter().zip(&all) {
        section.tables.push(table(fault, runs));
        let (goals, t, note) = goals::evaluate(fault, runs, &healthy);
        section.tables.push(goals);
        targets.extend(t);
        section.notes.push(format!(
            "{}: {note} What happened per pool: {}.",
            fault.short(),
            runs.iter()
                .zip(NAMES)
                .map(|(r, n)| format!("{n}: {}", r.note))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        let pre: u64 = runs.iter().map(|r| r.pre_fault_errors).sum();
        if pre > 0 {
            section.notes.push(format!(
                "{}: {pre} errors before the fault (not counted above).",
                fault.short()
            ));
        }
    }
    section.notes.push(
        "Caller errors count operations, not distinct failures: a task retries 10 ms after \
         an error, so a pool that fails acquires at once while the server is down shows \
         roughly (tasks × down time / 10 ms) errors, and one whose acquires wait for the \
         server shows at most one per task per acquire timeout."
            .into(),
    );
    section
}

fn fmt_back(b: Option<f64>) -> String {
    match b {
        Some(s) if s < 0.0 => format!("−{}", fmt_dur(Duration::from_secs_f64(-s))),
        Some(s) => fmt_dur(Duration::from_secs_f64(s)),
        None => "none".into(),
    }
}

async fn run_one(env: &Env, fault: Fault, f: usize, which: usize, d: &Durations) -> Run {
    let app = format!("faults-{f}-{which}");
    let (pool, closer, gauge) = pools::build(which, &env.ep, &app).await;
    let load = Load::start(&pool, TASKS);
    tokio::time::sleep(d.warm).await;
    let warm_end = load.mark();
    tokio::time::sleep(d.before).await;
    let (attempts0, failed0) = (gauge.attempts(), gauge.failed());
    let healthy_end = load.mark();
    let hold = match fault {
        Fault::ConnLimit => d.hold_limit,
        _ => d.hold_freeze,
    };
    let struck = env.inject(fault, &load, &app, hold).await;
    load.ok_since(struck.back, d.cap).await;
    tokio::time::sleep(d.after).await;
    let (tl, lost) = load.finish(Duration::from_secs(15)).await;
    let (fault_at, in_flight) = (struck.at, struck.in_flight);
    let r = Run {
        errors: tl.errors_between(fault_at, u32::MAX),
        pre_fault_errors: tl.errors_between(0, fault_at).total(),
        in_flight,
        longest: Duration::from_micros(u64::from(tl.longest_gap(warm_end).0)),
        back_to_ok: tl
            .first_ok_after(struck.down)
            .map(|t| (f64::from(t) - f64::from(struck.back)) / 1e6),
        ok_during: struck.lifted.map(|l| tl.ok_between(fault_at, l)),
        connects: gauge.attempts() - attempts0,
        connects_failed: gauge.failed() - failed0,
        peak: gauge.peak(),
        healthy: tl.ok_between(warm_end, healthy_end) as f64
            / (f64::from(healthy_end - warm_end) / 1e6).max(1e-3),
        note: if lost > 0 {
            format!("{}; {lost} tasks did not stop in 15 s", struck.note)
        } else {
            struck.note
        },
    };
    drop(pool);
    closer.close().await;
    env.wait_gone(&app, Duration::from_secs(5)).await;
    if env.backends(&app).await > 0 {
        eprintln!("  warning: {app} still has backends on the server after its pool closed");
    }
    r
}

fn healthy_table(healthy: &[f64]) -> Table {
    let mut t = Table::new(
        "healthy throughput (mean of the healthy periods before each fault), which decides \
         the peers that may be a fault's best peer",
        &[
            "pool",
            "ops/s",
            "vs poolwarden",
            "best-peer candidate (≥ 0.95x)",
        ],
    );
    for (i, (name, h)) in NAMES.iter().zip(healthy).enumerate() {
        let r = h / healthy[0].max(1e-9);
        t.row(vec![
            name.to_string(),
            thousands(*h),
            crate::report::ratio(r),
            if i == 0 {
                "—".into()
            } else if r >= 0.95 {
                "yes".into()
            } else {
                "no".into()
            },
        ]);
    }
    t
}

fn table(fault: Fault, runs: &[Run]) -> Table {
    let mut t = Table::new(
        fault.title(),
        &[
            "pool",
            "caller errors",
            "acquire (timeouts)",
            "query (timeouts)",
            "CircuitOpen",
            "in flight at fault",
            "longest without success",
            "server back → first success",
            "ok during fault",
            "connects (failed)",
            "peak connects",
            "healthy ops/s",
        ],
    );
    for (r, name) in runs.iter().zip(NAMES) {
        t.row(vec![
            name.to_string(),
            r.errors.total().to_string(),
            format!("{} ({})", r.errors.acquire, r.errors.acquire_timeouts),
            format!("{} ({})", r.errors.query, r.errors.query_timeouts),
            if name.starts_with("poolwarden") {
                r.errors.circuit_open.to_string()
            } else {
                "—".into()
            },
            r.in_flight.to_string(),
            fmt_dur(r.longest),
            fmt_back(r.back_to_ok),
            r.ok_during
                .map(|n| thousands(n as f64))
                .unwrap_or_else(|| "—".into()),
            format!("{} ({})", r.connects, r.connects_failed),
            r.peak.to_string(),
            thousands(r.healthy),
        ]);
    }
    t
}
