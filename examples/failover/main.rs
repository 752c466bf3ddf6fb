//! The failover demo: a replica set (one primary, three read replicas) under steady read
//! and write load while its members die and come back.
//!
//! ```text
//! cargo run --example failover                  # about 24 s, on the simulated backend
//! cargo run --example failover -- --fast        # the same story in 6 s (CI)
//! cargo run --example failover -- --seconds 60  # the same story, slower
//! cargo run --example failover -- --strategy least-loaded   # or random, round-robin
//! ```
//!
//! On the simulated backend (the default) the demo scripts the faults, as fractions of the
//! run (the times shown are those of the default 24 s):
//!
//! - at 4 s replica `db3` dies (its server refuses connections, open ones are killed);
//! - at 10 s the primary `db1` dies; at 11 s a "failover manager" promotes replica `db2`
//!   and points the other replicas at it (the library only notices: it reads each
//!   member's role);
//! - at 17 s everything heals: `db3` comes back, `db1` rejoins as a replica of `db2`.
//!
//! Twelve readers and three writers run all along (each write is followed by a
//! read-your-writes read with its causality token). Every second one status line shows,
//! per member: role (`*` when the set does not route to it), breaker state, connections in
//! use / idle, reads per second and errors callers saw on it that second. At the end a
//! summary: reads and writes served, errors seen by callers, time to eject (from the kill
//! until the set stops routing to the member), time to fail over (from the primary's kill
//! until a write succeeds on the promoted member), time to readmit. Everything is measured,
//! nothing is assumed. Ctrl-C (or SIGTERM) stops the run early: the summary is printed and
//! the supervisor shut down cleanly.
//!
//! The demo prints its own event lines (`>>`); the library's logs (breaker transitions,
//! role changes) are off unless asked for: `RUST_LOG=poolwarden=info`.
//!
//! # Real servers
//!
//! With the `postgres` feature (on by default), give PostgreSQL URLs and the same load runs
//! against them:
//!
//! ```text
//! cargo run --example failover -- \
//!     --primary postgres://app:secret@db1:5432/app \
//!     --replica postgres://app:secret@db2:5432/app --replica postgres://app:secret@db3:5432/app
//! # or
//! FAILOVER_PRIMARY_URL=postgres://app:secret@db1/app \
//! FAILOVER_REPLICA_URLS=postgres://app:secret@db2/app,postgres://app:secret@db3/app \
//!     cargo run --example failover
//! ```
//!
//! It creates the table `poolwarden_failover` on the primary if it is missing, waits until
//! the replicas have it, then reads (`SELECT max(id)`) and writes (`INSERT`) until Ctrl-C,
//! or for `--seconds N`. It injects no faults: stopping servers and promoting a replica are
//! the operator's to do, e.g. `pg_ctl -D <primary> -m immediate stop`, then
//! `pg_ctl -D <replica> promote`.
//! The summary then reports what it saw: members ejected and readmitted (with times since
//! start) and, if the writes moved to another member, how long writes failed before one
//! succeeded there. Roles come from the backend's `Backend::status`; a backend without it
//! routes by the configured roles only.

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use poolwarden::backends::sim::{SimBackend, SimBehavior};
use poolwarden::messages::RoleChanged;
use poolwarden::{
    Backend, BreakerConfig, BreakerState, ConnectionConfig, Error, MemberInfo, PoolConfig, PoolKey,
    ReadOptions, ReplicaSetConfig, ReplicaSetHandle, Role, Strategy, SupervisorConfig,
    SupervisorHandle,
};
use tokio::time::Instant;

type BoxError = Box<dyn StdError>;

/// Readers and writers of the steady load.
const READERS: usize = 12;
const WRITERS: usize = 3;
/// How often the set reads its members' roles, lag and positions.
const TOPOLOGY_INTERVAL: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

struct Args {
    /// Run length; `None`: until Ctrl-C (real servers only).
    seconds: Option<f64>,
    strategy: Strategy,
    primary: Option<String>,
    replicas: Vec<String>,
}

const USAGE: &str =
    "usage: failover [--fast | --seconds N] [--strategy round-robin|random|least-loaded]
                [--primary URL --replica URL [--replica URL ...]]
environment: FAILOVER_PRIMARY_URL, FAILOVER_REPLICA_URLS (comma-separated)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: None,
        strategy: Strategy::RoundRobin,
        primary: None,
        replicas: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--fast" => args.seconds = Some(6.0),
            "--seconds" => {
                let v = value("--seconds")?;
                let s: f64 = v
                    .parse()
                    .map_err(|_| format!("--seconds: `{v}` is not a number"))?;
                if !(s >= 1.0 && s.is_finite()) {
                    return Err("--seconds must be at least 1".into());
                }
                args.seconds = Some(s);
            }
            "--strategy" => {
                args.strategy = match value("--strategy")?.as_str() {
                    "round-robin" | "round_robin" => Strategy::RoundRobin,
                    "random" => Strategy::Random,
                    "least-loaded" | "least_loaded" => Strategy::LeastLoaded,
                    other => return Err(format!("unknown strategy `{other}`")),
                }
            }
            "--primary" => args.primary = Some(value("--primary")?),
            "--replica" => args.replicas.push(value("--replica")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.primary.is_none() {
        args.primary = std::env::var("FAILOVER_PRIMARY_URL")
            .ok()
            .filter(|s| !s.is_empty());
    }
    if args.replicas.is_empty() {
        if let Ok(list) = std::env::var("FAILOVER_REPLICA_URLS") {
            args.replicas = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
    }
    if args.primary.is_none() && !args.replicas.is_empty() {
        return Err("replica URLs given without a primary URL".into());
    }
    Ok(args)
}

#[actix::main]
async fn main() -> Result<(), BoxError> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("failover: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    if std::env::var_os("RUST_LOG").is_none() {
        // The status lines tell the story; the library's own logs on request.
        std::env::set_var("RUST_LOG", "poolwarden=error");
    }
    common::init_tracing();
    match args.primary.clone() {
        None => run_simulated(&args).await,
        Some(primary) => run_real(&args, primary).await,
    }
}

// ---------------------------------------------------------------------------------------
// What the load does on each backend
// ---------------------------------------------------------------------------------------

/// One read and one write statement on a backend's connection.
trait Workload: Backend + Clone {
    fn read(conn: &mut Self::Connection) -> impl Future<Output = Result<(), String>>;
    fn write(conn: &mut Self::Connection) -> impl Future<Output = Result<(), String>>;
}

impl Workload for SimBackend {
    async fn read(conn: &mut Self::Connection) -> Result<(), String> {
        conn.query("SELECT * FROM orders WHERE id = 42")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
    async fn write(conn: &mut Self::Connection) -> Result<(), String> {
        conn.query("INSERT INTO orders VALUES (42)")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[cfg(feature = "postgres")]
impl Workload for poolwarden::backends::postgres::PostgresBackend {
    async fn read(conn: &mut Self::Connection) -> Result<(), String> {
        conn.batch_execute("SELECT max(id) FROM poolwarden_failover")
            .await
            .map_err(|e| e.to_string())
    }
    async fn write(conn: &mut Self::Connection) -> Result<(), String> {
        conn.batch_execute("INSERT INTO poolwarden_failover (at) VALUES (now())")
            .await
            .map_err(|e| e.to_string())
    }
}

/// Member pools of the demo: small, quick to give up on a dead server, quick to heal.
fn pool_config() -> PoolConfig {
    PoolConfig {
        min_idle: 2,
        max_size: 8,
        // Long enough for a write to ride out a failover of a second or so.
        acquire_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        probe_timeout: Duration::from_millis(250),
        probe_interval: Some(Duration::from_secs(1)),
        breaker: BreakerConfig {
            failure_threshold: 3,
            success_threshold: 2,
            open_for: Duration::from_millis(250),
            max_open_for: Duration::from_secs(1),
        },
        ..PoolConfig::default()
    }
}

fn set_config(
    args: &Args,
    primary: ConnectionConfig,
    replicas: Vec<ConnectionConfig>,
) -> ReplicaSetConfig {
    let mut config = ReplicaSetConfig::new("orders", primary, replicas);
    config.strategy = args.strategy;
    config.max_lag = Some(Duration::from_millis(500));
    config.topology_interval = TOPOLOGY_INTERVAL;
    config.pool = Some(pool_config());
    config
}

fn supervisor_config() -> SupervisorConfig {
    SupervisorConfig {
        default_pool: pool_config(),
        ..SupervisorConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// The simulated run
// ---------------------------------------------------------------------------------------

/// When each scripted fault happens, from the start of the load.
struct Script {
    kill_replica: Duration,
    kill_primary: Duration,
    promote: Duration,
    heal: Duration,
    end: Duration,
}

impl Script {
    fn over(total: Duration) -> Self {
        let at = |n: u32| total.mul_f64(f64::from(n) / 24.0);
        Self {
            kill_replica: at(4),
            kill_primary: at(10),
            promote: at(11),
            heal: at(17),
            end: total,
        }
    }
}

async fn run_simulated(args: &Args) -> Result<(), BoxError> {
    let total = Duration::from_secs_f64(args.seconds.unwrap_or(24.0));
    let script = Script::over(total);
    let sim = SimBackend::new(42);
    sim.set_default_behavior(SimBehavior {
        connect_latency: Duration::from_millis(5),
        query_latency: Duration::from_millis(2),
        ..SimBehavior::default()
    });
    let primary = ConnectionConfig::parse("sim://app@db1:5432/orders")?;
    let replicas: Vec<ConnectionConfig> = (2..=4)
        .map(|i| ConnectionConfig::parse(&format!("sim://app@db{i}:5432/orders")))
        .collect::<Result<_, _>>()?;
    let [db1, db2, db3, db4] =
        [&primary, &replicas[0], &replicas[1], &replicas[2]].map(|c| sim.server(&c.primary_host()));
    for replica in [&db2, &db3, &db4] {
        replica.replicate_from(&db1);
    }
    let labels: HashMap<PoolKey, String> = std::iter::once(&primary)
        .chain(&replicas)
        .map(|c| (PoolKey::of(c), c.hosts[0].host.clone()))
        .collect();
    let (k_db1, k_db2, k_db3) = (
        PoolKey::of(&primary),
        PoolKey::of(&replicas[0]),
        PoolKey::of(&replicas[1]),
    );

    println!(
        "failover demo on the simulated backend: primary db1, replicas db2 db3 db4; \
         {READERS} readers, {WRITERS} writers, {:.0} s, strategy {:?}",
        total.as_secs_f64(),
        args.strategy
    );
    println!(
        "script: kill db3 at {:.1}s, kill the primary db1 at {:.1}s, promote db2 at {:.1}s, \
         heal all at {:.1}s",
        script.kill_replica.as_secs_f64(),
        script.kill_primary.as_secs_f64(),
        script.promote.as_secs_f64(),
        script.heal.as_secs_f64()
    );
    let sup = SupervisorHandle::start(sim.clone(), supervisor_config())?;
    let set = sup.replica_set(set_config(args, primary, replicas)).await?;
    let demo = Demo::start(&sup, &set, labels).await?;

    let faults = {
        let demo = demo.clone();
        async move {
            let start = demo.start;
            sleep_until(start + script.kill_replica).await;
            demo.note("kill db3 (replica): it refuses connections, open ones are killed");
            db3.go_down();
            demo.marks.lock().unwrap().replica_killed = Some(Instant::now());
            sleep_until(start + script.kill_primary).await;
            demo.note("kill db1 (the primary)");
            db1.go_down();
            demo.marks.lock().unwrap().primary_killed = Some(Instant::now());
            sleep_until(start + script.promote).await;
            demo.note("failover manager: promote db2, point db3 and db4 at it");
            db2.promote();
            db3.replicate_from(&db2);
            db4.replicate_from(&db2);
            demo.marks.lock().unwrap().promoted = Some(Instant::now());
            sleep_until(start + script.heal).await;
            demo.note("heal: db3 comes back, db1 rejoins as a replica of db2");
            db1.replicate_from(&db2);
            db1.come_up();
            db3.come_up();
            demo.marks.lock().unwrap().healed = Some(Instant::now());
            sleep_until(start + script.end).await;
        }
    };
    let interrupted = demo.run(faults).await;
    demo.stop().await;

    // The summary: everything below was measured during the run.
    let marks = demo.marks.lock().unwrap().clone();
    let ejections = demo.ejections.lock().unwrap().clone();
    let writes = demo.writes.lock().unwrap().clone();
    let mut lines = demo.totals_summary(interrupted);
    let eject = |key: PoolKey, usable: bool, after: Option<Instant>| {
        after.and_then(|a| {
            ejections
                .iter()
                .find(|e| e.key == key && e.usable == usable && e.at >= a)
                .map(|e| e.at)
        })
    };
    // `what: took (why)`, or why there is no figure.
    let mut timed = |what: &str, from: Option<Instant>, to: Option<Instant>, why: String| {
        let figure = match (from, to) {
            (Some(f), Some(t)) => format!("{:.0} ms ({why})", (t - f).as_secs_f64() * 1000.0),
            (None, _) => "n/a (the run ended before the fault)".into(),
            (Some(_), None) => "n/a (did not happen before the end of the run)".into(),
        };
        lines.push(format!("{:<26}{figure}", format!("{what}:")));
    };
    timed(
        "time to eject db3",
        marks.replica_killed,
        eject(k_db3, false, marks.replica_killed),
        "from its kill until the set stopped routing to it".into(),
    );
    timed(
        "time to eject db1",
        marks.primary_killed,
        eject(k_db1, false, marks.primary_killed),
        "the primary".into(),
    );
    let first_write_on_db2 = marks
        .primary_killed
        .and_then(|k| writes.first_ok.get(&k_db2).copied().filter(|t| *t >= k));
    let promoted_after = match (marks.primary_killed, marks.promoted) {
        (Some(k), Some(p)) => format!("{:.0} ms", (p - k).as_secs_f64() * 1000.0),
        _ => "n/a".into(),
    };
    timed(
        "time to fail over",
        marks.primary_killed,
        first_write_on_db2,
        format!(
            "from the primary's kill until a write succeeded on db2, which was promoted \
             {promoted_after} after the kill"
        ),
    );
    timed(
        "time to readmit db3",
        marks.healed,
        eject(k_db3, true, marks.healed),
        "from the heal until the set routed to it again".into(),
    );
    timed(
        "time to readmit db1",
        marks.healed,
        eject(k_db1, true, marks.healed),
        "as a replica".into(),
    );
    demo.print_summary(&lines);
    demo.shutdown(&sup).await
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(t).await;
}

// ---------------------------------------------------------------------------------------
// The run against real servers
// ---------------------------------------------------------------------------------------

#[cfg(feature = "postgres")]
async fn run_real(args: &Args, primary_url: String) -> Result<(), BoxError> {
    use poolwarden::backends::postgres::PostgresBackend;

    let primary = ConnectionConfig::parse(&primary_url)?;
    let replicas: Vec<ConnectionConfig> = args
        .replicas
        .iter()
        .map(|u| ConnectionConfig::parse(u))
        .collect::<Result<_, _>>()?;
    for c in std::iter::once(&primary).chain(&replicas) {
        if c.backend != "postgres" {
            return Err(format!(
                "{c}: only postgres:// URLs are supported by this demo (got `{}`)",
                c.backend
            )
            .into());
        }
    }
    let mut labels: HashMap<PoolKey, String> = HashMap::new();
    labels.insert(PoolKey::of(&primary), primary.primary_host());
    for r in &replicas {
        labels.insert(PoolKey::of(r), r.primary_host());
    }
    let sup = SupervisorHandle::start(PostgresBackend::new(), supervisor_config())?;
    let set = sup.replica_set(set_config(args, primary, replicas)).await?;
    {
        let conn = set.write().await?;
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS poolwarden_failover \
             (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    }
    // Until every replica has replayed the table, reading it there fails: wait (5 s at
    // most) until a full round of reads succeeds, before any reader starts counting.
    let (mut in_a_row, deadline) = (0, Instant::now() + Duration::from_secs(5));
    while in_a_row < labels.len() && Instant::now() < deadline {
        let ok = match set.read().await {
            Ok(mut conn) => PostgresBackend::read(&mut conn).await.is_ok(),
            Err(_) => false,
        };
        in_a_row = if ok { in_a_row + 1 } else { 0 };
        if !ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "failover demo against real servers: {} member(s), {READERS} readers, {WRITERS} \
         writers, strategy {:?}; no faults are injected. {}",
        labels.len(),
        args.strategy,
        match args.seconds {
            Some(s) => format!("Running for {s:.0} s (or until Ctrl-C)."),
            None => "Running until Ctrl-C.".into(),
        }
    );
    let demo = Demo::start(&sup, &set, labels).await?;
    let seconds = args.seconds;
    let interrupted = demo
        .run(async move {
            match seconds {
                Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
                None => std::future::pending().await,
            }
        })
        .await;
    demo.stop().await;

    let ejections = demo.ejections.lock().unwrap().clone();
    let writes = demo.writes.lock().unwrap().clone();
    let mut lines = demo.totals_summary(interrupted);
    if ejections.is_empty() {
        lines.push("ejections: none (no member became unusable)".into());
    }
    for e in &ejections {
        lines.push(format!(
            "{} {} at {:.2}s",
            demo.label(e.key),
            if e.usable { "readmitted" } else { "ejected" },
            (e.at - demo.start).as_secs_f64()
        ));
    }
    if writes.moves.is_empty() {
        lines.push("time to fail over: n/a (writes never moved to another member)".into());
    }
    for m in &writes.moves {
        let outage = m
            .failing_since
            .map(|f| {
                format!(
                    "{:.0} ms after the first failed write",
                    (m.at - f).as_secs_f64() * 1000.0
                )
            })
            .unwrap_or_else(|| "without a failed write".into());
        lines.push(format!(
            "writes moved from {} to {} at {:.2}s, {outage}",
            demo.label(m.from),
            demo.label(m.to),
            (m.at - demo.start).as_secs_f64()
        ));
    }
    demo.print_summary(&lines);
    demo.shutdown(&sup).await
}

#[cfg(not(feature = "postgres"))]
async fn run_real(_: &Args, _: String) -> Result<(), BoxError> {
    Err("real servers need the `postgres` feature (cargo run --features postgres --example failover)".into())
}

// ---------------------------------------------------------------------------------------
// Load, measurements, status lines
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct MemberCounters {
    reads: AtomicU64,
    writes: AtomicU64,
    errors: AtomicU64,
}

#[derive(Default)]
struct Totals {
    reads: AtomicU64,
    read_errors: AtomicU64,
    writes: AtomicU64,
    write_errors: AtomicU64,
    /// Read-your-writes reads (with a causality token) that were served.
    ryw_reads: AtomicU64,
    /// The longest acquire of a read and of a write, in microseconds.
    slowest_read_us: AtomicU64,
    slowest_write_us: AtomicU64,
}

fn record_wait(max: &AtomicU64, since: Instant) {
    let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
    max.fetch_max(us, Ordering::Relaxed);
}

/// When the scripted faults happened.
#[derive(Debug, Clone, Default)]
struct Marks {
    replica_killed: Option<Instant>,
    primary_killed: Option<Instant>,
    promoted: Option<Instant>,
    healed: Option<Instant>,
}

/// A member the set stopped (or started again) routing to, as seen in `topology()`.
#[derive(Debug, Clone)]
struct Ejection {
    key: PoolKey,
    usable: bool,
    at: Instant,
}

#[derive(Debug, Clone)]
struct WriteMove {
    from: PoolKey,
    to: PoolKey,
    failing_since: Option<Instant>,
    at: Instant,
}

/// What the writers saw.
#[derive(Debug, Clone, Default)]
struct WriteLog {
    last_key: Option<PoolKey>,
    failing_since: Option<Instant>,
    first_ok: HashMap<PoolKey, Instant>,
    moves: Vec<WriteMove>,
}

impl WriteLog {
    fn ok(&mut self, key: PoolKey, at: Instant) {
        self.first_ok.entry(key).or_insert(at);
        if let Some(from) = self.last_key.filter(|k| *k != key) {
            self.moves.push(WriteMove {
                from,
                to: key,
                failing_since: self.failing_since,
                at,
            });
        }
        self.last_key = Some(key);
        self.failing_since = None;
    }

    fn failed(&mut self, at: Instant) {
        self.failing_since.get_or_insert(at);
    }
}

/// Prints role changes as they are published.
struct RolePrinter {
    start: Instant,
    labels: Arc<HashMap<PoolKey, String>>,
}

impl Actor for RolePrinter {
    type Context = Context<Self>;
}

impl Handler<RoleChanged> for RolePrinter {
    type Result = ();
    fn handle(&mut self, e: RoleChanged, _: &mut Self::Context) {
        let label = self.labels.get(&e.key).cloned().unwrap_or(e.host);
        println!(
            "  >> {:>5.1}s role change in `{}`: {label} {} -> {}",
            (e.at - self.start).as_secs_f64(),
            e.set,
            role_name(e.from),
            role_name(e.to)
        );
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Primary => "primary",
        Role::Replica => "replica",
    }
}

fn error_key(e: &Error) -> Option<PoolKey> {
    match e {
        Error::Timeout { key, .. }
        | Error::Backend { key, .. }
        | Error::BackendPanic { key, .. }
        | Error::CircuitOpen { key, .. }
        | Error::PoolFailed { key, .. }
        | Error::PoolSaturated { key, .. }
        | Error::PoolClosed { key, .. }
        | Error::UnknownKey { key, .. } => Some(*key),
        _ => None,
    }
}

struct DemoInner<B: Workload> {
    set: ReplicaSetHandle<B>,
    labels: Arc<HashMap<PoolKey, String>>,
    order: Vec<PoolKey>,
    members: HashMap<PoolKey, MemberCounters>,
    totals: Totals,
    start: Instant,
    stop: AtomicBool,
    marks: Mutex<Marks>,
    ejections: Mutex<Vec<Ejection>>,
    writes: Mutex<WriteLog>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

struct Demo<B: Workload>(Arc<DemoInner<B>>);

impl<B: Workload> Clone for Demo<B> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<B: Workload> std::ops::Deref for Demo<B> {
    type Target = DemoInner<B>;
    fn deref(&self) -> &DemoInner<B> {
        &self.0
    }
}

impl<B: Workload> Demo<B> {
    /// Subscribe to role changes, then start the readers, the writers and the monitor.
    async fn start(
        sup: &SupervisorHandle<B>,
        set: &ReplicaSetHandle<B>,
        labels: HashMap<PoolKey, String>,
    ) -> Result<Self, BoxError> {
        let order: Vec<PoolKey> = set.topology().iter().map(|m| m.key).collect();
        let labels = Arc::new(labels);
        let start = Instant::now();
        sup.subscribe_topology(
            RolePrinter {
                start,
                labels: Arc::clone(&labels),
            }
            .start()
            .recipient(),
        )
        .await?;
        let demo = Demo(Arc::new(DemoInner {
            set: set.clone(),
            members: order
                .iter()
                .map(|k| (*k, MemberCounters::default()))
                .collect(),
            labels,
            order,
            totals: Totals::default(),
            start,
            stop: AtomicBool::new(false),
            marks: Mutex::default(),
            ejections: Mutex::default(),
            writes: Mutex::default(),
            tasks: Mutex::default(),
        }));
        let mut tasks = Vec::new();
        for _ in 0..READERS {
            tasks.push(actix::spawn(demo.clone().reader()));
        }
        for _ in 0..WRITERS {
            tasks.push(actix::spawn(demo.clone().writer()));
        }
        tasks.push(actix::spawn(demo.clone().monitor()));
        *demo.tasks.lock().unwrap() = tasks;
        Ok(demo)
    }

    fn label(&self, key: PoolKey) -> String {
        self.labels
            .get(&key)
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    fn note(&self, what: &str) {
        println!("  >> {:>5.1}s {what}", self.start.elapsed().as_secs_f64());
    }

    fn member(&self, key: PoolKey) -> Option<&MemberCounters> {
        self.members.get(&key)
    }

    fn read_ok(&self, key: PoolKey) {
        self.totals.reads.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = self.member(key) {
            m.reads.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn failed(&self, key: Option<PoolKey>, read: bool) {
        let total = if read {
            &self.totals.read_errors
        } else {
            &self.totals.write_errors
        };
        total.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = key.and_then(|k| self.member(k)) {
            m.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One read: acquire (routed by the set), run the read statement, release.
    async fn read_once(&self, options: ReadOptions) -> bool {
        let asked = Instant::now();
        let read = self.set.read_with(options).await;
        record_wait(&self.totals.slowest_read_us, asked);
        match read {
            Ok(mut conn) => {
                let key = conn.key();
                match B::read(&mut conn).await {
                    Ok(()) => {
                        self.read_ok(key);
                        true
                    }
                    Err(e) => {
                        tracing::debug!(member = %self.label(key), error = %e, "read failed");
                        self.failed(Some(key), true);
                        false
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "read acquire failed");
                self.failed(error_key(&e), true);
                false
            }
        }
    }

    async fn reader(self) {
        while !self.stop.load(Ordering::Relaxed) {
            let ok = self.read_once(ReadOptions::default()).await;
            pause(ok, 5).await;
        }
    }

    async fn writer(self) {
        while !self.stop.load(Ordering::Relaxed) {
            let ok = match self.write_once().await {
                Some(token) => {
                    // Read-your-writes: only a member that replayed this write serves it.
                    let after = ReadOptions {
                        after: token,
                        ..ReadOptions::default()
                    };
                    if self.read_once(after).await && token.is_some() {
                        self.totals.ryw_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    true
                }
                None => false,
            };
            pause(ok, 20).await;
        }
    }

    /// One write; its causality token (if the backend has one) when it succeeded.
    async fn write_once(&self) -> Option<Option<poolwarden::CausalityToken>> {
        let asked = Instant::now();
        let write = self.set.write().await;
        record_wait(&self.totals.slowest_write_us, asked);
        let mut conn = match write {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "write acquire failed");
                self.failed(error_key(&e), false);
                self.writes.lock().unwrap().failed(Instant::now());
                return None;
            }
        };
        let key = conn.key();
        if let Err(e) = B::write(&mut conn).await {
            tracing::debug!(member = %self.label(key), error = %e, "write failed");
            drop(conn);
            self.failed(Some(key), false);
            self.writes.lock().unwrap().failed(Instant::now());
            return None;
        }
        let token = match self.set.release_write(conn).await {
            Ok(token) => token,
            // The write itself went through: only its token is missing.
            Err(e) => {
                tracing::debug!(member = %self.label(key), error = %e, "no write position");
                None
            }
        };
        self.totals.writes.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = self.member(key) {
            m.writes.fetch_add(1, Ordering::Relaxed);
        }
        self.writes.lock().unwrap().ok(key, Instant::now());
        Some(token)
    }

    /// Watch `topology()` for members the set stops or starts routing to.
    async fn monitor(self) {
        let mut usable: HashMap<PoolKey, bool> = self
            .set
            .topology()
            .iter()
            .map(|m| (m.key, m.usable))
            .collect();
        while !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            for m in self.set.topology() {
                let was = usable.insert(m.key, m.usable);
                if was.is_some_and(|w| w != m.usable) {
                    let at = Instant::now();
                    self.ejections.lock().unwrap().push(Ejection {
                        key: m.key,
                        usable: m.usable,
                        at,
                    });
                    println!(
                        "  >> {:>5.1}s {} {}",
                        (at - self.start).as_secs_f64(),
                        self.label(m.key),
                        if m.usable {
                            "readmitted: the set routes to it again"
                        } else {
                            "ejected: the set no longer routes to it"
                        }
                    );
                }
            }
        }
    }

    /// Print a status line every second until `until` resolves or Ctrl-C; answers
    /// whether it was interrupted.
    async fn run(&self, until: impl Future<Output = ()>) -> bool {
        println!(
            "status, per member: role (P primary, R replica, * = not routed to), breaker, \
             in use/idle, reads/s, errors; then the whole set's writes/s and errors"
        );
        let mut ticker =
            tokio::time::interval_at(self.start + Duration::from_secs(1), Duration::from_secs(1));
        let mut last: HashMap<PoolKey, (u64, u64)> = HashMap::new();
        let mut last_totals = (0, 0);
        let mut last_tick = self.start;
        let status = async {
            loop {
                let now = ticker.tick().await;
                let dt = (now - last_tick).as_secs_f64().max(1e-3);
                last_tick = now;
                println!("{}", self.status_line(now, dt, &mut last, &mut last_totals));
            }
        };
        tokio::pin!(until);
        tokio::select! {
            _ = &mut until => false,
            _ = status => false,
            _ = common::shutdown_signal() => {
                println!("  >> {:>5.1}s interrupted: stopping the load", self.start.elapsed().as_secs_f64());
                true
            }
        }
    }

    fn status_line(
        &self,
        now: Instant,
        dt: f64,
        last: &mut HashMap<PoolKey, (u64, u64)>,
        last_totals: &mut (u64, u64),
    ) -> String {
        let topology: HashMap<PoolKey, MemberInfo> = self
            .set
            .topology()
            .into_iter()
            .map(|m| (m.key, m))
            .collect();
        let mut line = format!("{:>4.0}s", (now - self.start).as_secs_f64());
        for key in &self.order {
            let Some(info) = topology.get(key) else {
                continue;
            };
            let c = &self.members[key];
            let (reads, errors) = (
                c.reads.load(Ordering::Relaxed),
                c.errors.load(Ordering::Relaxed),
            );
            let (r0, e0) = last.insert(*key, (reads, errors)).unwrap_or((0, 0));
            let role = match (info.role, info.usable) {
                (Role::Primary, true) => "P ",
                (Role::Primary, false) => "P*",
                (Role::Replica, true) => "R ",
                (Role::Replica, false) => "R*",
            };
            let breaker = match info.breaker {
                BreakerState::Closed => "ok  ",
                BreakerState::Open => "OPEN",
                BreakerState::HalfOpen => "half",
            };
            let _ = write!(
                line,
                " | {} {role} {breaker} {:>2}/{:<2} {:>4}r/s {:>2}e",
                self.label(*key),
                info.in_use,
                info.idle,
                ((reads - r0) as f64 / dt).round(),
                errors - e0,
            );
        }
        let t = &self.totals;
        let writes = t.writes.load(Ordering::Relaxed);
        let errors = t.read_errors.load(Ordering::Relaxed) + t.write_errors.load(Ordering::Relaxed);
        let (w0, e0) = *last_totals;
        *last_totals = (writes, errors);
        let _ = write!(
            line,
            " || {:>3}w/s {:>2}e",
            ((writes - w0) as f64 / dt).round(),
            errors - e0
        );
        line
    }

    /// Stop the load and wait for every task to finish its current operation.
    async fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        for t in tasks {
            // An operation in flight ends within the acquire timeout.
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
    }

    fn totals_summary(&self, interrupted: bool) -> Vec<String> {
        let t = &self.totals;
        let elapsed = self.start.elapsed().as_secs_f64();
        let (reads, writes) = (
            t.reads.load(Ordering::Relaxed),
            t.writes.load(Ordering::Relaxed),
        );
        let (read_errors, write_errors) = (
            t.read_errors.load(Ordering::Relaxed),
            t.write_errors.load(Ordering::Relaxed),
        );
        let per_member: Vec<String> = self
            .order
            .iter()
            .map(|k| {
                let c = &self.members[k];
                format!(
                    "{} {}r/{}w",
                    self.label(*k),
                    c.reads.load(Ordering::Relaxed),
                    c.writes.load(Ordering::Relaxed)
                )
            })
            .collect();
        let mut lines = vec![
            format!(
                "ran {elapsed:.1} s{}",
                if interrupted { " (interrupted)" } else { "" }
            ),
            format!(
                "reads served:             {reads} ({:.0}/s), {} of them read-your-writes",
                reads as f64 / elapsed,
                t.ryw_reads.load(Ordering::Relaxed)
            ),
            format!(
                "writes served:            {writes} ({:.0}/s)",
                writes as f64 / elapsed
            ),
            format!("per member:               {}", per_member.join(", ")),
            format!(
                "errors seen by callers:   {} ({read_errors} reads, {write_errors} writes)",
                read_errors + write_errors
            ),
        ];
        lines.push(format!(
            "longest wait for a connection: {:.0} ms (read), {:.0} ms (write)",
            t.slowest_read_us.load(Ordering::Relaxed) as f64 / 1000.0,
            t.slowest_write_us.load(Ordering::Relaxed) as f64 / 1000.0
        ));
        if reads + read_errors > 0 {
            lines.push(format!(
                "read success rate:        {:.3}%",
                100.0 * reads as f64 / (reads + read_errors) as f64
            ));
        }
        lines
    }

    fn print_summary(&self, lines: &[String]) {
        println!("\n=== summary ===");
        for l in lines {
            println!("{l}");
        }
    }

    async fn shutdown(&self, sup: &SupervisorHandle<B>) -> Result<(), BoxError> {
        let report = sup.shutdown(Duration::from_secs(5)).await?;
        println!(
            "shut down: {} pools closed, {} connections closed, {} still checked out",
            report.pools_closed, report.connections_closed, report.still_checked_out
        );
        Ok(())
    }
}

/// Between operations: a short pause, longer after a failure (as a real client backs off).
async fn pause(ok: bool, ms: u64) {
    let ms = if ok { ms } else { ms * 5 };
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
