//! Scenario 10: a fleet — 4 OS processes, each with its own supervisor and a pool of 8 —
//! running the same query load straight to PostgreSQL and then through a PgBouncer in
//! transaction mode (`?pooler=transaction`, the typed one-round-trip query API): throughput,
//! p50 / p99 of one operation (acquire + query), and the server connections it took.
//!
//! The workers are this bench binary run again with [`WORKER_ENV`] set (see `main`).

use std::process::{Command, Stdio};
use std::time::Duration;

use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::{ConnectionConfig, EmbeddedSupervisor, PoolConfig, SupervisorConfig};
use tokio::time::Instant;

use crate::common::{PgBouncer, PgBouncerOptions};
use crate::hist;
use crate::report::{Section, Table, Target};
use crate::Ctx;

/// `<url>|<warm-up ms>|<timed ms>`: run as a fleet worker instead of the bench.
pub const WORKER_ENV: &str = "POOLWARDEN_BENCH_FLEET_WORKER";
pub const ID: u8 = 10;
const TITLE: &str = "A fleet of processes, direct and behind PgBouncer";
const PROCESSES: usize = 4;
const POOL_SIZE: u32 = 8;
/// Concurrent loops per process: more than the pool, so acquires queue too.
const LOOPS: usize = 16;
/// PgBouncer's `default_pool_size`: what the database sees through it.
const BOUNCER_POOL: u32 = 8;

/// A worker process: loops of acquire + `SELECT $1::int8 + 1` (checked) for the timed
/// window after a warm-up; prints `ops=<n> errors=<n> lat_us=<a,b,…>` on stdout.
pub fn worker(spec: &str) {
    let mut parts = spec.splitn(3, '|');
    let (url, warm, timed) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().and_then(|v| v.parse().ok()).unwrap_or(200u64),
        parts.next().and_then(|v| v.parse().ok()).unwrap_or(1000u64),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let sup =
            EmbeddedSupervisor::spawn(PostgresBackend::default(), SupervisorConfig::default())
                .expect("supervisor");
        let config = ConnectionConfig::parse(&url).expect("worker URL");
        let pool = sup
            .handle()
            .pool_with(
                config,
                PoolConfig {
                    max_size: POOL_SIZE,
                    min_idle: POOL_SIZE,
                    ..PoolConfig::default()
                },
            )
            .await
            .expect("pool");
        // The clock starts once the pool is full: connects (SCRAM) are not what is measured.
        // (`min_idle` opens them at start; `warm` only asks for what is not under way.)
        let _ = pool.warm(POOL_SIZE as usize).await;
        let ready_by = Instant::now() + Duration::from_secs(60);
        while pool.stats().idle < POOL_SIZE as usize && Instant::now() < ready_by {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let start = Instant::now();
        let (from, until) = (
            start + Duration::from_millis(warm),
            start + Duration::from_millis(warm + timed),
        );
        let loops = (0..LOOPS).map(|l| {
            let pool = pool.clone();
            async move {
                let (mut lat, mut errors) = (Vec::new(), 0u64);
                let mut n = l as i64;
                loop {
                    let t = Instant::now();
                    if t >= until {
                        break;
                    }
                    let ok = match pool.acquire().await {
                        Ok(conn) => match conn.query_one("SELECT $1::int8 + 1", &[&n]).await {
                            Ok(row) => row.get::<_, i64>(0) == n + 1,
                            Err(_) => false,
                        },
                        Err(_) => false,
                    };
                    if t >= from {
                        if ok {
                            lat.push(t.elapsed().as_micros() as u32);
                        } else {
                            errors += 1;
                        }
                    }
                    n += LOOPS as i64;
                }
                (lat, errors)
            }
        });
        let results = futures::future::join_all(loops).await;
        let errors: u64 = results.iter().map(|r| r.1).sum();
        let lat: Vec<String> = results
            .iter()
            .flat_map(|r| r.0.iter().map(u32::to_string))
            .collect();
        println!("ops={} errors={errors} lat_us={}", lat.len(), lat.join(","));
        let _ = sup.shutdown(Duration::from_secs(2)).await;
    });
}

/// What one route measured.
struct Run {
    ops: u64,
    errors: u64,
    seconds: f64,
    hist: hdrhistogram::Histogram<u64>,
    max_server: i64,
}

async fn run_fleet(url: &str, warm: Duration, timed: Duration, bouncer: &PgBouncer) -> Run {
    let exe = std::env::current_exe().expect("the bench binary");
    let spec = format!("{url}|{}|{}", warm.as_millis(), timed.as_millis());
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .env(WORKER_ENV, &spec)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a fleet worker")
        })
        .collect();
    let admin = bouncer.pg().superuser_client().await;
    let mut max_server = 0;
    let deadline = Instant::now() + warm + timed + Duration::from_secs(60);
    let mut handles: Vec<_> = children
        .into_iter()
        .map(|c| tokio::task::spawn_blocking(move || c.wait_with_output()))
        .collect();
    while handles.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
        max_server = max_server.max(PgBouncer::server_connections_on(&admin).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut run = Run {
        ops: 0,
        errors: 0,
        seconds: timed.as_secs_f64(),
        hist: hist::new(),
        max_server,
    };
    for h in handles.drain(..) {
        let out = h.await.expect("join").expect("worker output");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("ops="))
            .unwrap_or_else(|| panic!("a fleet worker printed no result: {text}"));
        for field in line.split_whitespace() {
            match field.split_once('=') {
                Some(("ops", v)) => run.ops += v.parse::<u64>().unwrap_or(0),
                Some(("errors", v)) => run.errors += v.parse::<u64>().unwrap_or(0),
                Some(("lat_us", v)) => {
                    for us in v.split(',').filter_map(|s| s.parse::<u64>().ok()) {
                        hist::record(&mut run.hist, Duration::from_micros(us));
                    }
                }
                _ => {}
            }
        }
    }
    run
}

pub async fn run(ctx: &Ctx, targets: &mut Vec<Target>) -> Section {
    let Some(bouncer) = PgBouncer::start_with(PgBouncerOptions {
        default_pool_size: BOUNCER_POOL,
        ..PgBouncerOptions::default()
    }) else {
        return Section::skipped(
            ID,
            TITLE,
            "PgBouncer or PostgreSQL is not installed (see the SKIP line above)",
        );
    };
    let (warm, timed) = (ctx.dur(0.5, 0.2), ctx.dur(4.0, 0.4));
    let mut section = Section::new(
        ID,
        TITLE,
        format!(
            "{PROCESSES} OS processes, each with its own supervisor and a pool of \
             {POOL_SIZE} (`min_idle` {POOL_SIZE}) and {LOOPS} concurrent loops of acquire + \
             `SELECT $1::int8 + 1` (the typed query API: one round trip, the unnamed \
             statement), {} ms warm-up then {} ms timed; first straight to a throwaway \
             PostgreSQL, then through PgBouncer {} in front of it (`pool_mode = transaction`, \
             `default_pool_size = {BOUNCER_POOL}`, the URL with `?pooler=transaction`). \
             Server connections: PostgreSQL's client backends, sampled every 50 ms.",
            warm.as_millis(),
            timed.as_millis(),
            crate::first_line("/usr/sbin/pgbouncer", &["--version"])
                .trim_start_matches("PgBouncer "),
        ),
    );
    let direct_url = {
        let mut c = bouncer.pg().config();
        c.tls.mode = poolwarden::SslMode::Disable;
        c.to_url_with_password()
    };
    let bouncer_url = format!("{}&pooler=transaction", bouncer.url());
    let mut table = Table::new(
        format!("{PROCESSES} processes × pool {POOL_SIZE}"),
        &[
            "route",
            "ops/s",
            "p50",
            "p99",
            "max server connections",
            "errors",
        ],
    );
    let mut runs = Vec::new();
    for (route, url) in [("direct", &direct_url), ("through PgBouncer", &bouncer_url)] {
        ctx.progress(&format!("  fleet: {route}"));
        let r = run_fleet(url, warm, timed, &bouncer).await;
        let s = hist::summary(&r.hist);
        table.rows.push(vec![
            route.to_string(),
            format!("{:.0}", r.ops as f64 / r.seconds),
            hist::fmt_dur(s.p50),
            hist::fmt_dur(s.p99),
            r.max_server.to_string(),
            r.errors.to_string(),
        ]);
        runs.push(r);
    }
    let (direct, pooled) = (&runs[0], &runs[1]);
    let ratio = (pooled.ops as f64) / (direct.ops.max(1) as f64);
    section.notes.push(format!(
        "Through PgBouncer: {:.2}x the direct throughput with {} server connections instead \
         of {} (the fleet's pools hold {} client connections).",
        ratio,
        pooled.max_server,
        direct.max_server,
        PROCESSES as u32 * POOL_SIZE
    ));
    section.tables.push(table);
    targets.push(Target::at_most(
        ID,
        "fleet behind PgBouncer: errors",
        (direct.errors + pooled.errors) as f64,
        0.0,
        format!("{} + {}", direct.errors, pooled.errors),
        "0".into(),
    ));
    targets.push(Target::at_most(
        ID,
        "fleet behind PgBouncer: server connections ≤ default_pool_size",
        pooled.max_server as f64,
        BOUNCER_POOL as f64,
        pooled.max_server.to_string(),
        BOUNCER_POOL.to_string(),
    ));
    section
}
