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
//! cargo bench --bench load -- --postgres-url URL --redis-url URL   # your servers instead of throwaway ones
//! ```
//!
//! Without URLs (flags, or `POOLWARDEN_BENCH_PG_URL` / `POOLWARDEN_BENCH_REDIS_URL`) the
//! bench starts throwaway PostgreSQL and Redis servers on free loopback ports with the test
//! harness in `tests/common`; when their binaries are missing the scenarios that need them
//! are skipped with the reason (and fail under `CI=true`). The other pools connect without
//! TLS, so poolwarden is told `sslmode=disable` too. A server you give must accept about
//! 100 connections at once.

#[path = "../../tests/common/mod.rs"]
mod common;

mod causes;
mod chart;
mod faults;
mod fleet;
mod hist;
mod mem;
mod noop;
mod peers;
mod postgres;
mod recorder;
mod redis;
mod report;
mod runner;
mod sim;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use poolwarden::{ConnectionConfig, SslMode};

use report::{Meta, Report, Section, Target};

/// What every scenario needs to know.
pub struct Ctx {
    pub quick: bool,
    pub chart_dir: PathBuf,
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

struct Args {
    quick: bool,
    pg_url: Option<String>,
    redis_url: Option<String>,
    only: Option<Vec<u8>>,
    full_in_debug: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        quick: false,
        pg_url: std::env::var("POOLWARDEN_BENCH_PG_URL").ok(),
        redis_url: std::env::var("POOLWARDEN_BENCH_REDIS_URL").ok(),
        only: None,
        full_in_debug: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--full" => a.full_in_debug = true,
            "--postgres-url" | "--pg-url" => a.pg_url = it.next(),
            "--redis-url" => a.redis_url = it.next(),
            "--only" => {
                a.only = it.next().map(|v| {
                    v.split(',')
                        .filter_map(|s| match s.trim() {
                            "faults" => Some(faults::ID),
                            "fleet" => Some(fleet::ID),
                            n => n.parse().ok(),
                        })
                        .collect()
                })
            }
            // Passed by `cargo bench`; filters of libtest-style runners are ignored.
            "--bench" | "--nocapture" | "--test" => {}
            "--help" | "-h" => {
                println!("{}", include_str!("usage.txt"));
                std::process::exit(0);
            }
            other if other.starts_with('-') => eprintln!("ignoring unknown flag {other}"),
            _ => {}
        }
    }
    if cfg!(debug_assertions) && !a.quick && !a.full_in_debug {
        eprintln!("a debug build runs in quick mode (pass --full to override); use `cargo bench --bench load` for the full run");
        a.quick = true;
    }
    a
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

fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Versions of the peers and drivers, from Cargo.lock.
fn versions() -> Vec<(String, String)> {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .unwrap_or_default();
    let wanted = [
        "bb8",
        "bb8-postgres",
        "bb8-redis",
        "deadpool",
        "deadpool-postgres",
        "deadpool-redis",
        "mobc",
        "tokio",
        "tokio-postgres",
        "redis",
        "actix",
    ];
    let mut out = vec![(
        "poolwarden".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    for name in wanted {
        let mut found = Vec::new();
        let mut lines = lock.lines();
        while let Some(l) = lines.next() {
            if l == format!("name = \"{name}\"") {
                if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = \"")) {
                    found.push(v.trim_end_matches('"').to_string());
                }
            }
        }
        if !found.is_empty() {
            out.push((name.to_string(), found.join(" + ")));
        }
    }
    out
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
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
    let args = parse_args();
    let started = Instant::now();
    let out_root = if args.quick || args.only.is_some() {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("bench-load")
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
    };
    let chart_dir = out_root.join("bench");
    std::fs::create_dir_all(&chart_dir).expect("create the chart directory");
    let ctx = Ctx {
        quick: args.quick,
        chart_dir,
        started,
    };
    let wants = |n: u8| args.only.as_ref().is_none_or(|o| o.contains(&n));
    let load_before = load_average();
    ctx.progress(&format!(
        "poolwarden load scenarios, {} mode, {} cores, load average {load_before}",
        if ctx.quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
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
    let mut closed_results = Vec::new();
    match &pg {
        Some(Ok(pg)) => {
            if wants(2) || wants(3) {
                timed(
                    &ctx,
                    &mut sections,
                    &mut targets,
                    "2. PostgreSQL closed loop",
                    |t| {
                        let (s, r) = rt.block_on(postgres::closed(&ctx, pg, t));
                        closed_results = r;
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
                    |_| rt.block_on(postgres::open(&ctx, pg, &closed_results)),
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
            |t| rt.block_on(sim::many_keys(&ctx, t)),
        );
    }
    if wants(6) {
        timed(&ctx, &mut sections, &mut targets, "6. routing", |t| {
            rt.block_on(sim::routing(&ctx, t))
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
                    s.spawn(|| postgres::cross_thread(&ctx, pg, t))
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

    let command = if ctx.quick {
        "cargo test --all-features --bench load -- --quick".to_string()
    } else {
        "cargo bench --bench load".to_string()
    };
    let report = Report {
        meta: Meta {
            command,
            quick: ctx.quick,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: cpu_model(),
            rustc: first_line("rustc", &["--version"]),
            date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            load_before,
            load_after: load_average(),
            versions: versions(),
            servers,
            total_seconds: started.elapsed().as_secs_f64(),
        },
        sections,
        targets,
    };
    println!("{}", report.terminal());
    let md = report.markdown(causes::INTRO, &causes::closing(&report));
    let path = out_root.join("benchmarks.md");
    std::fs::write(&path, md).expect("write the report");
    ctx.progress(&format!(
        "wrote {} and charts in {}",
        path.display(),
        ctx.chart_dir.display()
    ));
    drop(pg);
    drop(redis_t);
}
