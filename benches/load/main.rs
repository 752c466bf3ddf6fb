//! Load scenarios: poolwarden beside bb8, deadpool, mobc and a bare semaphore + `VecDeque`
//! floor, measured side by side in one process (see `docs/benchmarks.md` for the results
//! and their reading).
//!
//! ```text
//! cargo bench --bench load                                  # full run (≈ 12 min): rewrites docs/benchmarks.md and docs/bench/*.svg
//! cargo test --all-features --bench load -- --quick         # every scenario for a moment (CI); writes under target/bench-load/
//! cargo bench --bench load -- --only 1,5                    # some scenarios; writes under target/bench-load/
//! cargo bench --bench load -- --only faults                 # scenario 9 (faults) alone
//! cargo bench --bench load -- --only fleet                  # scenario 10 (4 processes, direct and through PgBouncer)
//! cargo bench --bench load -- --hog 2                       # beside 2 busy loops: writes docs/benchmarks-loaded.md
//! cargo bench --bench load -- --postgres-url URL --redis-url URL   # your servers instead of throwaway ones
//! ```
//!
//! Wall-clock targets are taken in rounds (3, or 5 for the no-op and one-caller scenarios),
//! the pools in turns within each round, and marked on the median of the per-round ratios
//! with their spread (`ratios.rs`). poolwarden runs with its default `PoolConfig` but for
//! `max_size`, once without a metrics recorder and once as a second pool created with a
//! Prometheus recorder on (`recorder.rs`); every target is marked for both. CPU figures are
//! the whole process's, all threads (`cpu.rs`). `--hog N` runs N busy-loop processes beside
//! the whole run (`hog.rs`, killed at the end or on a panic) and writes the report to
//! `docs/benchmarks-loaded.md` and `docs/bench-loaded/` (under `target/bench-load/` with
//! `--only` or `--quick`), never over the idle run's. A full run counts scenario 1's 1-task
//! case with callgrind when it can (`callgrind.rs`).
//!
//! Without URLs (flags, or `POOLWARDEN_BENCH_PG_URL` / `POOLWARDEN_BENCH_REDIS_URL`) the
//! bench starts throwaway PostgreSQL and Redis servers on free loopback ports with the test
//! harness in `tests/common`; when their binaries are missing the scenarios that need them
//! are skipped with the reason (and fail under `CI=true`). The other pools connect without
//! TLS, so poolwarden is told `sslmode=disable` too. A server you give must accept about
//! 100 connections at once.

#[path = "../../tests/common/mod.rs"]
mod common;

mod args;
mod callgrind;
mod causes;
mod chart;
mod cpu;
mod cross_thread;
mod faults;
mod fleet;
mod hist;
mod hog;
mod keys;
mod machine;
mod mem;
mod noop;
mod open_rate;
mod peers;
mod postgres;
mod ratios;
mod recorder;
mod redis;
mod report;
mod routing;
mod runner;
mod sim;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use poolwarden::{ConnectionConfig, SslMode};

// `crate::first_line` is used by fleet.rs too.
use machine::first_line;
use report::{Meta, Report, Section, Target};

/// What every scenario needs to know.
pub struct Ctx {
    pub quick: bool,
    pub chart_dir: PathBuf,
    /// Busy loops running beside the scenarios (`--hog N`).
    pub hog: usize,
    started: Instant,
}

impl Ctx {
    /// `full` seconds in a full run, `quick` in quick mode.
    pub fn dur(&self, full: f64, quick: f64) -> Duration {
        Duration::from_secs_f64(if self.quick { quick } else { full })
    }

    /// A progress line on stderr, stamped with the time since the start.
    pub fn progress(&self, msg: &str) {
        eprintln!("[{:>6.1}s] {msg}", self.started.elapsed().as_secs_f64());
    }
}

/// The PostgreSQL server the scenarios run against.
pub struct PgTarget {
    /// For poolwarden (`sslmode=disable`, like the others).
    base: ConnectionConfig,
    /// For bb8, deadpool and the floor.
    pub tp: tokio_postgres::Config,
    pub describe: String,
    _server: Option<common::PgServer>,
}

impl PgTarget {
    /// poolwarden's config with `application_name = app`.
    pub fn pw_config(&self, app: &str) -> ConnectionConfig {
        let mut c = self.base.clone();
        c.application_name = Some(app.into());
        c
    }
}

/// The Redis server scenario 4 runs against.
pub struct RedisTarget {
    pub pw: ConnectionConfig,
    pub url: String,
    pub describe: String,
    _server: Option<common::RedisServer>,
}

fn pg_target(url: Option<&str>) -> Result<PgTarget, String> {
    match url {
        Some(url) => {
            let mut base =
                ConnectionConfig::parse(url).map_err(|e| format!("--postgres-url: {e}"))?;
            base.tls.mode = SslMode::Disable;
            let tp = url.parse().map_err(|e| format!("--postgres-url: {e}"))?;
            Ok(PgTarget {
                base,
                tp,
                describe: "the PostgreSQL server given by URL".into(),
                _server: None,
            })
        }
        None => {
            let server = common::PgServer::start_with(common::PgOptions {
                max_connections: Some(300),
                // Trust on loopback: the suite measures pools, not SCRAM (which costs
                // ~0.2 s per connect in a debug build and would starve the quick mode).
                hba: Some(
                    "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
                        .into(),
                ),
                ..common::PgOptions::default()
            })
            .ok_or("PostgreSQL is not installed (see the SKIP line above)")?;
            let mut base = server.config();
            base.tls.mode = SslMode::Disable;
            let tp = server
                .url()
                .parse()
                .map_err(|e| format!("harness URL: {e}"))?;
            Ok(PgTarget {
                base,
                tp,
                describe: "a throwaway PostgreSQL server on loopback (TCP, no TLS, trust authentication, fsync off)"
                    .into(),
                _server: Some(server),
            })
        }
    }
}

fn redis_target(url: Option<&str>) -> Result<RedisTarget, String> {
    match url {
        Some(url) => Ok(RedisTarget {
            pw: ConnectionConfig::parse(url).map_err(|e| format!("--redis-url: {e}"))?,
            url: url.into(),
            describe: "the Redis server given by URL".into(),
            _server: None,
        }),
        None => {
            let server = common::RedisServer::start()
                .ok_or("Redis is not installed (see the SKIP line above)")?;
            Ok(RedisTarget {
                pw: server.config(),
                url: server.url(),
                describe: "a throwaway Redis server on loopback".into(),
                _server: Some(server),
            })
        }
    }
}

fn timed(
    ctx: &Ctx,
    sections: &mut Vec<Section>,
    targets: &mut Vec<Target>,
    name: &str,
    f: impl FnOnce(&mut Vec<Target>) -> Section,
) {
    ctx.progress(name);
    let t = Instant::now();
    let mut s = f(targets);
    s.seconds = t.elapsed().as_secs_f64();
    sections.push(s);
}

fn main() {
    if let Ok(spec) = std::env::var(fleet::WORKER_ENV) {
        // Scenario 10 runs this binary again as the fleet's worker processes.
        fleet::worker(&spec);
        return;
    }
    let args = args::parse();
    let started = Instant::now();
    let to_target = args.quick || args.only.is_some();
    let out_root = if to_target {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("bench-load")
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
    };
    // A loaded run never overwrites the idle run's report and charts.
    let (report_name, chart_name) = if args.hog > 0 {
        ("benchmarks-loaded.md", "bench-loaded")
    } else {
        ("benchmarks.md", "bench")
    };
    let chart_dir = out_root.join(chart_name);
    std::fs::create_dir_all(&chart_dir).expect("create the chart directory");
    let ctx = Ctx {
        quick: args.quick,
        chart_dir,
        hog: args.hog,
        started,
    };
    let wants = |n: u8| args.wants(n);
    let load_before = machine::load_average();
    // Killed when dropped: at the end of `main`, or while a panic unwinds.
    let hog = hog::Hog::start(args.hog).expect("start the busy loops of --hog");
    ctx.progress(&format!(
        "poolwarden load scenarios, {} mode, {} cores, load average {load_before}{}",
        if ctx.quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if hog.count() > 0 {
            format!(", {} busy loops beside it", hog.count())
        } else {
            String::new()
        }
    ));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut sections: Vec<Section> = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    let mut servers = Vec::new();

    let needs_pg = wants(2) || wants(3) || wants(7);
    let pg = if needs_pg {
        ctx.progress("starting PostgreSQL");
        let t = pg_target(args.pg_url.as_deref());
        if let Ok(pg) = &t {
            let v = rt.block_on(async {
                let (c, conn) = pg.tp.connect(tokio_postgres::NoTls).await.ok()?;
                tokio::spawn(conn);
                let row = c.query_one("SHOW server_version", &[]).await.ok()?;
                Some(row.get::<_, String>(0))
            });
            servers.push(format!(
                "PostgreSQL {}, {}",
                v.unwrap_or_else(|| "?".into()),
                pg.describe
            ));
        }
        Some(t)
    } else {
        None
    };
    let redis_t = if wants(4) {
        ctx.progress("starting Redis");
        let t = redis_target(args.redis_url.as_deref());
        if let Ok(r) = &t {
            servers.push(format!(
                "Redis {}, {}",
                first_line("redis-server", &["--version"]),
                r.describe
            ));
        }
        Some(t)
    } else {
        None
    };

    if wants(1) {
        timed(
            &ctx,
            &mut sections,
            &mut targets,
            "1. acquire + release, no-op connection",
            |t| rt.block_on(noop::run(&ctx, t)),
        );
    }
    let mut closed_peaks = Vec::new();
    match &pg {
        Some(Ok(pg)) => {
            if wants(2) || wants(3) {
                timed(
                    &ctx,
                    &mut sections,
                    &mut targets,
                    "2. PostgreSQL closed loop",
                    |t| {
                        let (s, peaks) = rt.block_on(postgres::closed(&ctx, pg, t));
                        closed_peaks = peaks;
                        s
                    },
                );
            }
            if wants(3) {
                timed(
                    &ctx,
                    &mut sections,
                    &mut targets,
                    "3. PostgreSQL fixed arrival rate",
                    |t| rt.block_on(open_rate::run(&ctx, pg, &closed_peaks, t)),
                );
            }
        }
        Some(Err(why)) => {
            for (n, title) in [
                (2, "PostgreSQL SELECT 1, closed loop"),
                (3, "PostgreSQL SELECT 1 at a fixed arrival rate"),
            ] {
                if wants(n) {
                    sections.push(Section::skipped(n, title, why.clone()));
                }
            }
        }
        None => {}
    }
    match &redis_t {
        Some(Ok(r)) => timed(
            &ctx,
            &mut sections,
            &mut targets,
            "4. Redis closed loop",
            |t| rt.block_on(redis::run(&ctx, r, t)),
        ),
        Some(Err(why)) => {
            sections.push(Section::skipped(4, "Redis PING, closed loop", why.clone()))
        }
        None => {}
    }
    if wants(5) {
        timed(
            &ctx,
            &mut sections,
            &mut targets,
            "5. many pool keys",
            |t| rt.block_on(keys::many_keys(&ctx, t)),
        );
    }
    if wants(6) {
        timed(&ctx, &mut sections, &mut targets, "6. routing", |t| {
            rt.block_on(routing::run(&ctx, t))
        });
    }
    match &pg {
        Some(Ok(pg)) if wants(7) => timed(
            &ctx,
            &mut sections,
            &mut targets,
            "7. one caller across threads",
            |t| {
                // Its own thread and current-thread runtime: not inside `rt`.
                std::thread::scope(|s| {
                    s.spawn(|| cross_thread::run(&ctx, pg, t))
                        .join()
                        .expect("scenario 7 panicked")
                })
            },
        ),
        Some(Err(why)) if wants(7) => {
            sections.push(Section::skipped(7, "Low load across threads", why.clone()))
        }
        _ => {}
    }
    if wants(8) {
        timed(&ctx, &mut sections, &mut targets, "8. cold storm", |t| {
            rt.block_on(sim::cold_storm(&ctx, t))
        });
    }
    if wants(fleet::ID) {
        timed(
            &ctx,
            &mut sections,
            &mut targets,
            "10. fleet behind PgBouncer",
            |t| rt.block_on(fleet::run(&ctx, t)),
        );
    }
    if wants(faults::ID) {
        timed(&ctx, &mut sections, &mut targets, "9. faults", |t| {
            rt.block_on(faults::run(&ctx, t))
        });
    }
    sections.sort_by_key(|s| s.id);
    targets.sort_by_key(|t| t.scenario);

    let mut command = if ctx.quick {
        "cargo test --all-features --bench load -- --quick".to_string()
    } else {
        "cargo bench --bench load --".to_string()
    };
    if let Some(only) = &args.only {
        let list: Vec<String> = only.iter().map(u8::to_string).collect();
        command += &format!(" --only {}", list.join(","));
    }
    if args.hog > 0 {
        command += &format!(" --hog {}", args.hog);
    }
    let command = command.trim_end_matches(" --").to_string();
    let report = Report {
        meta: Meta {
            command,
            quick: ctx.quick,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: machine::cpu_model(),
            rustc: first_line("rustc", &["--version"]),
            date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            load_before,
            load_after: machine::load_average(),
            versions: machine::versions(),
            servers,
            total_seconds: started.elapsed().as_secs_f64(),
            hog: hog.count(),
        },
        sections,
        targets,
        chart_link: chart_name.into(),
    };
    drop(hog);
    println!("{}", report.terminal());
    let md = report.markdown(causes::INTRO, &causes::closing(&report));
    let path = out_root.join(report_name);
    std::fs::write(&path, md).expect("write the report");
    ctx.progress(&format!(
        "wrote {} and charts in {}",
        path.display(),
        ctx.chart_dir.display()
    ));
    drop(pg);
    drop(redis_t);
}
