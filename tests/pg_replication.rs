//! Replica sets on real PostgreSQL streaming replication (a primary and two hot standbys
//! from `tests/common/pg_replication.rs`): the PostgreSQL backend's `status` and
//! `write_position` against real servers, ejection of a replica that is stopped under load,
//! a replica whose replay is paused skipped for lag, read-your-writes with the token of
//! `release_write`, and failover by `pg_promote()`.
//!
//! Each test runs its own cluster (they stop, pause and promote servers). Every test ends
//! by checking, on every running server, that the number of backends of the test's
//! `application_name` equals the member pool's `live` count. Measured times are printed
//! (`cargo test --test pg_replication -- --nocapture`).
#![cfg(feature = "postgres")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use common::pg_replication::{PgCluster, PgNode, StopMode};
use common::PgServer;
use common::{ms, secs};
use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::messages::RoleChanged;
use poolwarden::{
    Backend, BreakerConfig, ConnectionConfig, MemberInfo, PoolConfig, PoolKey, ReadOptions,
    ReplicaSetConfig, ReplicaSetHandle, Role, SupervisorConfig, SupervisorHandle,
};
use tokio::time::{sleep, timeout, Instant};

type Pg = PostgresBackend;

/// How often the set reads each member's status.
const TOPOLOGY: Duration = Duration::from_millis(200);
/// How often each member pool probes its server in the background.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Budget of one probe (topology or background).
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// Real servers and a 2-core machine shared with builds: room for scheduling.
const SLACK: Duration = Duration::from_millis(250);

fn pool_config() -> PoolConfig {
    PoolConfig {
        min_idle: 1,
        max_size: 4,
        acquire_timeout: secs(2),
        connect_timeout: secs(1),
        probe_timeout: PROBE_TIMEOUT,
        probe_interval: Some(PROBE_INTERVAL),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        backoff_initial: ms(20),
        backoff_max: ms(200),
        breaker: BreakerConfig {
            failure_threshold: 5,
            success_threshold: 2,
            open_for: ms(300),
            grow_after: std::time::Duration::ZERO,
            max_open_for: secs(1),
        },
        ..PoolConfig::default()
    }
}

/// A cluster, a supervisor and the set `name` over it (primary, then the replicas).
struct Fx {
    cluster: PgCluster,
    app: String,
    sup: SupervisorHandle<Pg>,
    set: ReplicaSetHandle<Pg>,
    keys: Vec<PoolKey>,
}

async fn start(name: &str, tweak: impl FnOnce(&mut ReplicaSetConfig)) -> Option<Fx> {
    let cluster = tokio::task::spawn_blocking(|| PgCluster::start(2))
        .await
        .expect("cluster start")?;
    let app = PgServer::unique_app(name);
    let primary = cluster.primary.config_for(&app);
    let replicas: Vec<ConnectionConfig> = cluster
        .replicas
        .iter()
        .map(|r| r.config_for(&app))
        .collect();
    let mut keys = vec![PoolKey::of(&primary)];
    keys.extend(replicas.iter().map(PoolKey::of));
    let mut config = ReplicaSetConfig::new(name, primary, replicas);
    config.topology_interval = TOPOLOGY;
    config.pool = Some(pool_config());
    tweak(&mut config);
    let sup = SupervisorHandle::start(
        PostgresBackend::new(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .expect("valid supervisor config");
    let set = sup.replica_set(config).await.expect("the set starts");
    let fx = Fx {
        cluster,
        app,
        sup,
        set,
        keys,
    };
    fx.within(secs(5), "the first topology round", |fx| {
        (0..3).all(|i| fx.usable(i) && fx.info(i).position.is_some())
    })
    .await;
    Some(fx)
}

impl Fx {
    fn info(&self, i: usize) -> MemberInfo {
        self.set
            .topology()
            .into_iter()
            .find(|m| m.key == self.keys[i])
            .expect("a member")
    }

    fn usable(&self, i: usize) -> bool {
        self.info(i).usable
    }

    fn index(&self, key: PoolKey) -> usize {
        self.keys.iter().position(|k| *k == key).expect("a member")
    }

    fn node(&self, i: usize) -> &dyn NodeRef {
        match i {
            0 => &self.cluster.primary,
            i => &self.cluster.replicas[i - 1],
        }
    }

    /// Poll `cond` every 5 ms for at most `limit`; the time it took.
    async fn within(&self, limit: Duration, what: &str, cond: impl Fn(&Fx) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if cond(self) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "not within {limit:?}: {what}; topology {:#?}",
                self.set.topology()
            );
            sleep(ms(5)).await;
        }
    }

    /// On every server in `running`: its backends of this test's application equal its
    /// member pool's live count.
    async fn assert_counts_match(&self, running: &[usize]) {
        for &i in running {
            let live = || self.set.member(self.keys[i]).expect("a member").live as i64;
            let mut seen = -1;
            for _ in 0..3 {
                let expected = live();
                seen = self.node(i).wait_count(&self.app, expected, secs(5)).await;
                if seen == live() {
                    break;
                }
            }
            assert_eq!(
                seen,
                live(),
                "member {i}: server backends of `{}` vs the pool's live count ({:?})",
                self.app,
                self.set.member(self.keys[i])
            );
        }
    }
}

/// [`PgNode`] helpers the tests need on either kind of node, as a trait object.
trait NodeRef: Sync {
    fn wait_count<'a>(
        &'a self,
        app: &'a str,
        expected: i64,
        limit: Duration,
    ) -> futures::future::LocalBoxFuture<'a, i64>;
}

impl<T: PgNode> NodeRef for T {
    fn wait_count<'a>(
        &'a self,
        app: &'a str,
        expected: i64,
        limit: Duration,
    ) -> futures::future::LocalBoxFuture<'a, i64> {
        Box::pin(PgNode::wait_backend_connections(self, app, expected, limit))
    }
}

/// Which server answered: its port and whether it is in recovery.
async fn whoami(conn: &tokio_postgres::Client) -> Result<(i32, bool), tokio_postgres::Error> {
    let row = conn
        .query_one(
            "SELECT current_setting('port')::int, pg_is_in_recovery()",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

// ---------------------------------------------------------------------------------------
// The backend against real servers
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn status_and_write_position_come_from_the_server() {
    let Some(cluster) = tokio::task::spawn_blocking(|| PgCluster::start(1))
        .await
        .unwrap()
    else {
        return;
    };
    let backend = PostgresBackend::new();
    let app = PgServer::unique_app("status");
    let mut primary = backend
        .connect(&cluster.primary.config_for(&app))
        .await
        .expect("connect to the primary");
    let replica = &cluster.replicas[0];
    let mut standby = backend
        .connect(&replica.config_for(&app))
        .await
        .expect("connect to the replica");
    primary
        .batch_execute("CREATE TABLE st (x int); INSERT INTO st VALUES (1)")
        .await
        .unwrap();
    let token = backend
        .write_position(&mut primary)
        .await
        .unwrap()
        .expect("a primary has a write position");
    assert!(
        cluster.wait_caught_up(secs(5)).await,
        "the replica caught up"
    );

    let p = backend.status(&mut primary).await.unwrap().expect("known");
    assert_eq!(p.role, Role::Primary);
    assert_eq!(p.lag, Some(Duration::ZERO));
    let r = backend.status(&mut standby).await.unwrap().expect("known");
    assert_eq!(r.role, Role::Replica);
    assert!(r.position.unwrap() >= token, "{r:?} vs token {token}");
    assert!(p.position.unwrap() >= token, "{p:?} vs token {token}");
    // Positions agree with the server's own LSN functions (which may only move on).
    assert!(r.position.unwrap() <= replica.position().await);
    // Idle is not lag: after a quiet second the replica still reports none.
    sleep(secs(1)).await;
    let r = backend.status(&mut standby).await.unwrap().expect("known");
    assert_eq!(r.lag, Some(Duration::ZERO), "{r:?}");
    // One round trip each, and nothing left in flight or in a transaction.
    assert_eq!(standby.requests_in_flight(), 0);
    assert!(!backend.needs_reset(&standby) && !backend.needs_reset(&primary));
    // A write connection that reached a replica answers its replay position.
    let replayed = backend.write_position(&mut standby).await.unwrap().unwrap();
    assert!(replayed >= r.position.unwrap() && replayed <= replica.position().await);
    println!("status: primary {p:?}, replica {r:?}, token {token}");
}

// ---------------------------------------------------------------------------------------
// A replica stopped under load
// ---------------------------------------------------------------------------------------

/// A failed read (the fields are read through `Debug`, in assertion messages).
#[derive(Debug)]
#[allow(dead_code)]
enum Failure {
    Acquire(String),
    Query(usize, String),
}

#[actix::test]
async fn a_replica_stopped_under_load_is_ejected_and_no_read_fails_afterwards() {
    let Some(fx) = start("eject", |_| {}).await else {
        return;
    };
    let fx = Arc::new(fx);
    let stop = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<(Instant, Failure)>>> = Arc::default();
    let served = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (fx, stop, failures, served) = (
                Arc::clone(&fx),
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&served),
            );
            actix::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // A failure is filed under when its read was routed: one routed to the
                    // replica before the ejection may fail after it (on a loaded machine,
                    // well after), and says nothing about routing once ejected.
                    let routed = Instant::now();
                    match fx.set.read().await {
                        Ok(conn) => match whoami(&conn).await {
                            Ok((_, true)) => {
                                served.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok((port, false)) => panic!("a read reached the primary ({port})"),
                            Err(e) => failures.lock().unwrap().push((
                                routed,
                                Failure::Query(fx.index(conn.key()), e.to_string()),
                            )),
                        },
                        Err(e) => failures
                            .lock()
                            .unwrap()
                            .push((routed, Failure::Acquire(e.to_string()))),
                    }
                    sleep(ms(1)).await;
                }
            })
        })
        .collect();

    fx.within(secs(5), "both replicas serve reads", |fx| {
        fx.info(1).reads > 20 && fx.info(2).reads > 20
    })
    .await;
    assert!(failures.lock().unwrap().is_empty(), "{:?}", failures.lock());

    // Stop replica 2 at once (as a crash), while the readers run.
    let stopped_at = Instant::now();
    let stopping = {
        let fx = Arc::clone(&fx);
        tokio::task::spawn_blocking(move || fx.cluster.replicas[1].stop(StopMode::Immediate))
    };
    fx.within(secs(3), "replica 2 is ejected", |fx| !fx.usable(2))
        .await;
    let ejected_at = Instant::now();
    let to_eject = ejected_at - stopped_at;
    stopping.await.expect("stopped");
    let r2_reads = fx.info(2).reads;
    let served_at_eject = served.load(Ordering::Relaxed);
    let limit = TOPOLOGY.max(PROBE_INTERVAL) + PROBE_TIMEOUT + SLACK;
    println!("replica stopped under load: ejected {to_eject:?} after the stop (limit {limit:?})");
    assert!(to_eject <= limit, "ejection took {to_eject:?}");

    sleep(secs(1)).await;
    {
        let failures = failures.lock().unwrap();
        let after: Vec<_> = failures.iter().filter(|(at, _)| *at > ejected_at).collect();
        assert!(
            after.is_empty(),
            "reads routed after the ejection failed: {after:?}"
        );
        // Before it, only reads that were running on replica 2 when it died.
        for (_, f) in failures.iter() {
            assert!(matches!(f, Failure::Query(2, _)), "{f:?}");
        }
        println!(
            "  {} read(s) failed before the ejection (queries running on the stopped replica)",
            failures.len()
        );
        assert!(failures.len() <= 6, "{failures:?}");
    }
    assert_eq!(
        fx.info(2).reads,
        r2_reads,
        "no read went to the ejected replica"
    );
    assert!(served.load(Ordering::Relaxed) > served_at_eject + 100);

    // It comes back: readmitted once the probes see it.
    let restarting = {
        let fx = Arc::clone(&fx);
        tokio::task::spawn_blocking(move || fx.cluster.replicas[1].start_again())
    };
    restarting.await.expect("started");
    let back = fx
        .within(secs(5), "replica 2 is readmitted", |fx| fx.usable(2))
        .await;
    fx.within(secs(3), "replica 2 serves reads again", |fx| {
        fx.info(2).reads > r2_reads + 20
    })
    .await;
    println!("  readmitted {back:?} after it accepted connections again");
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("a reader panicked");
    }
    assert!(
        failures
            .lock()
            .unwrap()
            .iter()
            .all(|(at, _)| *at < ejected_at),
        "no failure after the ejection, recovery included"
    );
    fx.assert_counts_match(&[0, 1, 2]).await;
}

// ---------------------------------------------------------------------------------------
// Lag
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn a_replica_whose_replay_is_paused_is_skipped_once_it_lags() {
    let max_lag = ms(400);
    let Some(fx) = start("lag", |c| c.max_lag = Some(max_lag)).await else {
        return;
    };
    {
        let w = fx.set.write().await.expect("write");
        w.batch_execute("CREATE TABLE lag (x int)").await.unwrap();
    }
    assert!(fx.cluster.wait_caught_up(secs(5)).await);
    // Idle: no lag reported, however long since the last write.
    sleep(TOPOLOGY * 3).await;
    for i in 1..=2 {
        assert_eq!(fx.info(i).lag, Some(Duration::ZERO), "{:?}", fx.info(i));
    }

    // Writes keep coming, every 20 ms; when each committed is kept.
    let stop = Arc::new(AtomicBool::new(false));
    let commits: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let writer = {
        let (set, stop, commits) = (fx.set.clone(), Arc::clone(&stop), Arc::clone(&commits));
        actix::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let w = set.write().await.expect("write");
                w.execute("INSERT INTO lag VALUES ($1)", &[&n])
                    .await
                    .expect("insert");
                commits.lock().unwrap().push(Instant::now());
                drop(w);
                n += 1;
                sleep(ms(20)).await;
            }
            n
        })
    };
    sleep(ms(300)).await;
    for i in 1..=2 {
        let lag = fx.info(i).lag;
        assert!(lag.is_some_and(|l| l < max_lag), "replica {i}: {lag:?}");
    }
    // Replica 1 stops replaying (it still receives).
    let r1 = &fx.cluster.replicas[0];
    let pausing = Instant::now();
    r1.pause_replay().await;
    let paused_at = Instant::now();
    // The last commit it can have replayed is the last one before the pause took effect
    // (at the latest `paused_at`); on a loaded machine the writer may have stalled well
    // before, and the lag counts from that commit, not from the pause.
    let last_replayable = commits
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|at| **at <= paused_at)
        .copied()
        .unwrap_or(pausing);
    let paused_position = r1.position().await;
    fx.within(secs(5), "replica 1 reports lag past max_lag", |fx| {
        fx.info(1).lag.is_some_and(|l| l > max_lag)
    })
    .await;
    let skipped = paused_at.elapsed();
    println!(
        "paused replay: lag past {max_lag:?} seen {skipped:?} after the pause ({:?})",
        fx.info(1).lag
    );
    // The lag grows with the time since the last commit it replayed: it cannot pass
    // max_lag sooner than that (the slack covers the commit's own round trip and clocks).
    let since_commit = paused_at.saturating_duration_since(last_replayable) + skipped;
    assert!(
        since_commit + ms(100) >= max_lag,
        "too early: {skipped:?} after the pause, {since_commit:?} after the last commit"
    );
    let limit = max_lag + TOPOLOGY + PROBE_TIMEOUT + SLACK;
    assert!(
        skipped <= limit,
        "noticed {skipped:?} after the pause (limit {limit:?})"
    );
    assert_eq!(r1.position().await, paused_position, "replay is paused");
    assert!(
        fx.info(2).lag.is_some_and(|l| l < max_lag),
        "{:?}",
        fx.info(2)
    );

    // Reads skip replica 1 (all go to replica 2) while it lags.
    let before = (fx.info(1).reads, fx.info(2).reads);
    let r2_port = i32::from(fx.cluster.replicas[1].port());
    for _ in 0..20 {
        let conn = fx.set.read().await.expect("read");
        assert_eq!(whoami(&conn).await.unwrap(), (r2_port, true));
    }
    assert_eq!(fx.info(1).reads, before.0, "no read on the lagging replica");
    assert_eq!(fx.info(2).reads, before.1 + 20);

    // Resumed, it catches up and serves again.
    r1.resume_replay().await;
    let paused_for = skipped;
    let back = fx
        .within(secs(5), "replica 1 is back within max_lag", |fx| {
            fx.info(1).lag.is_some_and(|l| l <= max_lag)
        })
        .await;
    let r1_port = i32::from(r1.port());
    let mut ports = Vec::new();
    for _ in 0..10 {
        let conn = fx.set.read().await.expect("read");
        ports.push(whoami(&conn).await.unwrap().0);
    }
    assert!(ports.contains(&r1_port), "{ports:?}");
    stop.store(true, Ordering::Relaxed);
    let rows = writer.await.expect("the writer");
    println!(
        "  replay resumed ({paused_for:?}+ paused): back within max_lag {back:?} later; \
         {rows} rows written"
    );
    fx.assert_counts_match(&[0, 1, 2]).await;
}

// ---------------------------------------------------------------------------------------
// Read-your-writes
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn a_read_with_the_write_token_sees_the_row_just_written() {
    let Some(fx) = start("ryw", |_| {}).await else {
        return;
    };
    {
        let w = fx.set.write().await.expect("write");
        w.batch_execute("CREATE TABLE ryw (id int)").await.unwrap();
    }
    assert!(fx.cluster.wait_caught_up(secs(5)).await);

    // Both replicas' replay paused: nothing written from here reaches them, so the check
    // cannot pass by luck.
    for r in &fx.cluster.replicas {
        r.pause_replay().await;
    }
    let mut by_member = [0usize; 3];
    for id in 0..20 {
        let w = fx.set.write().await.expect("write");
        w.execute("INSERT INTO ryw VALUES ($1)", &[&id])
            .await
            .unwrap();
        let token = fx
            .set
            .release_write(w)
            .await
            .expect("release_write")
            .expect("PostgreSQL gives a token");
        // Without the token a replica answers, and it has not seen the row.
        let plain = fx.set.read().await.expect("read");
        assert_ne!(fx.index(plain.key()), 0);
        assert_eq!(count_id(&plain, id).await, 0, "replay is paused");
        drop(plain);
        // With it, the member that answers has the row.
        let read = fx
            .set
            .read_with(ReadOptions {
                after: Some(token),
                ..ReadOptions::default()
            })
            .await
            .expect("read after the token");
        by_member[fx.index(read.key())] += 1;
        assert_eq!(count_id(&read, id).await, 1, "read-your-writes, row {id}");
    }
    assert_eq!(by_member, [20, 0, 0], "only the primary is past the tokens");

    // Replay resumed: once the replicas' positions pass the tokens, they serve them.
    for r in &fx.cluster.replicas {
        r.resume_replay().await;
    }
    let mut by_member = [0usize; 3];
    for id in 100..120 {
        let w = fx.set.write().await.expect("write");
        w.execute("INSERT INTO ryw VALUES ($1)", &[&id])
            .await
            .unwrap();
        let token = fx.set.release_write(w).await.unwrap().unwrap();
        // Give one topology round the chance to see the replicas past the token.
        sleep(TOPOLOGY + ms(100)).await;
        let read = fx
            .set
            .read_with(ReadOptions {
                after: Some(token),
                ..ReadOptions::default()
            })
            .await
            .expect("read after the token");
        by_member[fx.index(read.key())] += 1;
        assert_eq!(count_id(&read, id).await, 1, "read-your-writes, row {id}");
    }
    println!("read-your-writes with replay running: reads served by {by_member:?}");
    assert!(
        by_member[1] + by_member[2] >= 10,
        "replicas past the token serve: {by_member:?}"
    );
    fx.assert_counts_match(&[0, 1, 2]).await;
}

async fn count_id(conn: &tokio_postgres::Client, id: i32) -> i64 {
    conn.query_one("SELECT count(*) FROM ryw WHERE id = $1", &[&id])
        .await
        .expect("count")
        .get(0)
}

// ---------------------------------------------------------------------------------------
// Failover
// ---------------------------------------------------------------------------------------

struct Collector(Arc<Mutex<Vec<RoleChanged>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<RoleChanged> for Collector {
    type Result = ();
    fn handle(&mut self, msg: RoleChanged, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg);
    }
}

#[actix::test]
async fn after_the_primary_dies_and_a_replica_is_promoted_writes_go_there() {
    let Some(fx) = start("failover", |_| {}).await else {
        return;
    };
    let fx = Arc::new(fx);
    let events: Arc<Mutex<Vec<RoleChanged>>> = Arc::default();
    fx.sup
        .subscribe_topology(Collector(Arc::clone(&events)).start().recipient())
        .await
        .unwrap();
    {
        let w = fx.set.write().await.expect("write");
        w.batch_execute("CREATE TABLE fo (id int, at_port int)")
            .await
            .unwrap();
    }
    assert!(fx.cluster.wait_caught_up(secs(5)).await);

    // Writers insert the port of the server they reached, every few milliseconds; an
    // attempt is given up after 500 ms (as a request deadline would).
    let stop = Arc::new(AtomicBool::new(false));
    let oks: Arc<Mutex<Vec<(Instant, i32)>>> = Arc::default();
    let errors = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let (set, stop, oks, errors) = (
                fx.set.clone(),
                Arc::clone(&stop),
                Arc::clone(&oks),
                Arc::clone(&errors),
            );
            actix::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let attempt = async {
                        let w = set.write().await.map_err(|e| e.to_string())?;
                        let row = w
                            .query_one(
                                "INSERT INTO fo SELECT 1, current_setting('port')::int \
                                 RETURNING at_port",
                                &[],
                            )
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok::<i32, String>(row.get(0))
                    };
                    match timeout(ms(500), attempt).await {
                        Ok(Ok(port)) => oks.lock().unwrap().push((Instant::now(), port)),
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            sleep(ms(10)).await;
                        }
                    }
                    sleep(ms(5)).await;
                }
            })
        })
        .collect();
    sleep(ms(300)).await;
    let old_port = i32::from(fx.cluster.primary.port());
    assert!(oks.lock().unwrap().iter().all(|(_, p)| *p == old_port));

    // The primary dies; replica 1 is promoted.
    let killed_at = Instant::now();
    {
        let fx = Arc::clone(&fx);
        tokio::task::spawn_blocking(move || fx.cluster.primary.stop())
            .await
            .expect("stopped");
    }
    let down_at = Instant::now();
    let r1 = &fx.cluster.replicas[0];
    r1.promote().await;
    let promoted_at = Instant::now();
    let new_port = i32::from(r1.port());
    let first_write = loop {
        let first = oks
            .lock()
            .unwrap()
            .iter()
            .find(|(_, p)| *p == new_port)
            .map(|(at, _)| *at);
        if let Some(at) = first {
            break at;
        }
        assert!(
            promoted_at.elapsed() < secs(5),
            "no write reached the promoted replica; topology {:#?}",
            fx.set.topology()
        );
        sleep(ms(5)).await;
    };
    let after_promotion = first_write.saturating_duration_since(promoted_at);
    let after_kill = first_write - killed_at;
    println!(
        "failover: primary stopped in {:?}, pg_promote() took {:?}; first write on the new \
         primary {after_promotion:?} after the promotion ({after_kill:?} after the kill)",
        down_at - killed_at,
        promoted_at - down_at,
    );
    assert!(
        after_promotion < secs(2),
        "writes on the new primary took {after_promotion:?}"
    );

    // Once attempts started before the switch have timed out (500 ms), every write
    // succeeds, on the new primary.
    sleep(ms(600)).await;
    let errors_then = errors.load(Ordering::Relaxed);
    let count_then = oks.lock().unwrap().len();
    let settled_at = Instant::now();
    sleep(ms(600)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("a writer panicked");
    }
    assert_eq!(
        errors.load(Ordering::Relaxed),
        errors_then,
        "writes failed after the first one on the new primary"
    );
    {
        let oks = oks.lock().unwrap();
        assert!(oks.len() > count_then + 20, "writes go on");
        assert!(oks
            .iter()
            .filter(|(at, _)| *at > settled_at)
            .all(|(_, p)| *p == new_port));
    }
    let topology = fx.set.topology();
    let role = |i: usize| topology.iter().find(|m| m.key == fx.keys[i]).unwrap();
    assert_eq!((role(1).role, role(1).usable), (Role::Primary, true));
    assert!(!role(0).usable, "the dead primary is not routed to");
    {
        let events = events.lock().unwrap();
        let promoted: Vec<_> = events.iter().filter(|e| e.key == fx.keys[1]).collect();
        assert_eq!(promoted.len(), 1, "{events:?}");
        assert_eq!(
            (promoted[0].from, promoted[0].to),
            (Role::Replica, Role::Primary)
        );
    }
    // The rows are on the new primary.
    let on_new: i64 = r1
        .superuser_client()
        .await
        .query_one("SELECT count(*) FROM fo WHERE at_port = $1", &[&new_port])
        .await
        .unwrap()
        .get(0);
    let written_new = oks
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p)| *p == new_port)
        .count();
    assert!(
        on_new as usize >= written_new,
        "{on_new} rows vs {written_new} acknowledged"
    );

    // The dead primary's pool holds nothing; the others match their servers.
    fx.within(secs(5), "the dead primary's pool is empty", |fx| {
        fx.set.member(fx.keys[0]).unwrap().live == 0
    })
    .await;
    fx.assert_counts_match(&[1, 2]).await;
}
