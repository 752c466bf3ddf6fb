//! A fleet: four OS processes, each with its own supervisor and a pool of 8, through one
//! PgBouncer whose `default_pool_size` is 4. The test re-runs this binary as its workers
//! (`fleet_worker`, which does nothing unless `POOLWARDEN_FLEET` is set), samples the
//! server's connections while they run and checks what each reports.

use std::cell::RefCell;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use poolwarden::backends::postgres::PgConnection;
use poolwarden::{BackendError, BackendErrorKind, ConnectionConfig, PoolHandle};
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;

use crate::common::{self, PgBouncer};
use crate::{behind_pooler, pool_config, start_pool, Pg};

/// `<mode>|<worker id>|<milliseconds>|<url>`; absent: the worker test returns at once.
const FLEET_ENV: &str = "POOLWARDEN_FLEET";
const WORKER_TEST: &str = "fleet::fleet_worker";
const PROCESSES: usize = 4;
const POOL_SIZE: u32 = 8;
/// Concurrent loops per worker (more than the pool: acquires queue too).
const LOOPS: usize = 12;

#[derive(Default, Debug)]
struct Counts {
    ops: u64,
    ok: u64,
    wrong: u64,
    expected_errors: u64,
    unexpected_errors: u64,
    prepared_errors: u64,
    committed: u64,
    rolled_back: u64,
    reused_after_error: u64,
    first_unexpected: Option<String>,
}

impl Counts {
    fn unexpected(&mut self, what: &str, e: impl std::fmt::Display) {
        let text = format!("{what}: {e}");
        if text.contains("prepared statement") {
            self.prepared_errors += 1;
        }
        self.unexpected_errors += 1;
        self.first_unexpected.get_or_insert(text);
    }
}

fn random_i64() -> i64 {
    // Doubling must not overflow.
    rand::random::<i64>() >> 2
}

/// One operation of the pooler-safe API, chosen by `n`; results are checked.
async fn typed_op(pool: &PoolHandle<Pg>, id: i32, n: u64, c: &RefCell<Counts>) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => return c.borrow_mut().unexpected("acquire", e),
    };
    c.borrow_mut().ops += 1;
    let outcome: Result<bool, tokio_postgres::Error> = match n % 4 {
        0 => double(&conn).await,
        1 => {
            // Insert, read back in the same transaction, commit.
            let k = random_i64();
            let v = format!("w{id}-{k}");
            async {
                let tx = conn.transaction().await?;
                tx.execute(
                    "INSERT INTO fleet (worker, k, v) VALUES ($1, $2, $3)",
                    &[&id, &k, &v],
                )
                .await?;
                let got: Option<String> = tx
                    .query_opt(
                        "SELECT v FROM fleet WHERE worker = $1 AND k = $2",
                        &[&id, &k],
                    )
                    .await?
                    .map(|r| r.get(0));
                tx.commit().await?;
                let good = got.as_deref() == Some(v.as_str());
                if good {
                    c.borrow_mut().committed += 1;
                }
                Ok(good)
            }
            .await
        }
        2 => {
            // Insert, then roll back (explicitly, or by dropping the transaction): nothing
            // is left, as the same connection sees right after.
            let k = random_i64();
            let explicit = n % 8 == 2;
            async {
                let tx = conn.transaction().await?;
                let inserted = tx
                    .execute(
                        "INSERT INTO fleet (worker, k, v) VALUES ($1, $2, 'rolled back')",
                        &[&id, &k],
                    )
                    .await?;
                if explicit {
                    tx.rollback().await?;
                } else {
                    drop(tx);
                }
                let left: i64 = conn
                    .query_one(
                        "SELECT count(*) FROM fleet WHERE worker = $1 AND k = $2",
                        &[&id, &k],
                    )
                    .await?
                    .get(0);
                let good = inserted == 1 && left == 0;
                if good {
                    c.borrow_mut().rolled_back += 1;
                }
                Ok(good)
            }
            .await
        }
        _ => {
            // Division by zero: a Query error; the connection works afterwards.
            match conn.query_one("SELECT 1 / $1::int4", &[&0i32]).await {
                Ok(row) => {
                    c.borrow_mut()
                        .unexpected("division by zero succeeded", format!("{row:?}"));
                    return;
                }
                Err(e) => {
                    let zero = e.code() == Some(&SqlState::DIVISION_BY_ZERO);
                    let kind = BackendError::from(e).kind();
                    if zero && kind == BackendErrorKind::Query {
                        c.borrow_mut().expected_errors += 1;
                    } else {
                        c.borrow_mut()
                            .unexpected("division by zero", format!("{kind:?}"));
                        return;
                    }
                }
            }
            let again = double(&conn).await;
            if matches!(again, Ok(true)) {
                c.borrow_mut().reused_after_error += 1;
            }
            again
        }
    };
    let mut c = c.borrow_mut();
    match outcome {
        Ok(true) => c.ok += 1,
        Ok(false) => c.wrong += 1,
        Err(e) => c.unexpected("query", BackendError::from(e)),
    }
}

async fn double(conn: &PgConnection) -> Result<bool, tokio_postgres::Error> {
    let x = random_i64();
    let row = conn.query_one("SELECT $1::int8 * 2", &[&x]).await?;
    Ok(row.get::<_, i64>(0) == x * 2)
}

/// The negative control: the same query through the client's `query` with a `&str`,
/// which prepares a named statement in a round trip of its own.
async fn named_op(pool: &PoolHandle<Pg>, c: &RefCell<Counts>) {
    let conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => return c.borrow_mut().unexpected("acquire", e),
    };
    c.borrow_mut().ops += 1;
    let x = random_i64();
    let result = conn.client().query_one("SELECT $1::int8 * 2", &[&x]).await;
    let mut c = c.borrow_mut();
    match result {
        Ok(row) if row.get::<_, i64>(0) == x * 2 => c.ok += 1,
        Ok(_) => c.wrong += 1,
        Err(e) => c.unexpected("named query", BackendError::from(e)),
    }
}

/// The worker: runs only when re-run by [`run_fleet`] with `POOLWARDEN_FLEET` set.
#[actix::test]
async fn fleet_worker() {
    let Ok(spec) = std::env::var(FLEET_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.splitn(4, '|').collect();
    let [mode, id, ms, url] = parts[..] else {
        panic!("bad {FLEET_ENV}: {spec}");
    };
    let id: i32 = id.parse().expect("worker id");
    let run_for = Duration::from_millis(ms.parse().expect("milliseconds"));
    let config = behind_pooler(ConnectionConfig::parse(url).expect("url"));
    let (_sup, pool) = start_pool(config, pool_config(POOL_SIZE)).await;

    // Connect first (SCRAM logins are slow in a debug build on a busy machine), then time
    // the load.
    pool.warm(POOL_SIZE as usize).await.expect("warm the pool");
    let counts = RefCell::new(Counts::default());
    let deadline = Instant::now() + run_for;
    let loops = (0..LOOPS).map(|l| {
        let (pool, counts) = (&pool, &counts);
        async move {
            let mut n = l as u64;
            while Instant::now() < deadline {
                if mode == "named" {
                    named_op(pool, counts).await;
                } else {
                    typed_op(pool, id, n, counts).await;
                }
                n += 1;
            }
        }
    });
    futures::future::join_all(loops).await;

    // What the table holds for this worker: exactly the committed rows.
    let rows_in_table: i64 = if mode == "named" {
        0
    } else {
        let conn = pool.acquire().await.expect("acquire after the run");
        conn.query_one("SELECT count(*) FROM fleet WHERE worker = $1", &[&id])
            .await
            .expect("count rows")
            .get(0)
    };
    let s = pool.stats();
    let c = counts.into_inner();
    let line = json!({
        "id": id, "mode": mode, "ops": c.ops, "ok": c.ok, "wrong": c.wrong,
        "expected_errors": c.expected_errors, "unexpected_errors": c.unexpected_errors,
        "prepared_errors": c.prepared_errors, "committed": c.committed,
        "rolled_back": c.rolled_back, "reused_after_error": c.reused_after_error,
        "rows_in_table": rows_in_table, "created": s.created, "closed": s.closed,
        "live": s.live, "max_size": s.max_size, "first_unexpected": c.first_unexpected,
    });
    println!("\nFLEET {line}");
}

/// What a fleet run measured.
struct FleetRun {
    workers: Vec<Value>,
    max_server_connections: i64,
    samples: usize,
    took: Duration,
}

/// Run `PROCESSES` workers in `mode` for `ms` against `bouncer`, sampling the server's
/// connections until they all exited.
async fn run_fleet(bouncer: &PgBouncer, mode: &str, ms: u64) -> FleetRun {
    let exe = std::env::current_exe().expect("the test binary");
    let started = Instant::now();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", WORKER_TEST, "--nocapture", "--test-threads=1"])
                .env(FLEET_ENV, format!("{mode}|{id}|{ms}|{}", bouncer.url()))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a worker")
        })
        .collect();
    let mut max_server_connections = 0;
    let mut samples = 0;
    let admin = bouncer.pg().superuser_client().await;
    let limit = Duration::from_millis(ms) + common::secs(60);
    loop {
        let n = PgBouncer::server_connections_on(&admin).await;
        max_server_connections = max_server_connections.max(n);
        samples += 1;
        let running = children
            .iter_mut()
            .filter_map(|c| c.try_wait().expect("try_wait").is_none().then_some(()))
            .count();
        if running == 0 {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "{running} worker(s) still running after {limit:?}"
        );
        tokio::time::sleep(common::ms(20)).await;
    }
    let took = started.elapsed();
    let workers = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().expect("worker output");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "worker failed ({}):\n{stdout}\n{stderr}",
                out.status
            );
            let line = stdout
                .lines()
                .find_map(|l| l.split_once("FLEET ").map(|(_, json)| json))
                .unwrap_or_else(|| panic!("no FLEET line from a worker:\n{stdout}\n{stderr}"));
            serde_json::from_str(line).expect("the worker's JSON line")
        })
        .collect();
    FleetRun {
        workers,
        max_server_connections,
        samples,
        took,
    }
}

fn sum(workers: &[Value], field: &str) -> u64 {
    workers.iter().map(|w| w[field].as_u64().unwrap_or(0)).sum()
}

#[actix::test]
async fn four_processes_through_pgbouncer_with_the_pooler_safe_api() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    bouncer
        .pg()
        .superuser_client()
        .await
        .batch_execute("CREATE TABLE fleet (worker int4, k int8, v text)")
        .await
        .expect("create the table");

    let run = run_fleet(&bouncer, "typed", 3000).await;
    for w in &run.workers {
        eprintln!("worker: {w}");
        let id = &w["id"];
        let ops = w["ops"].as_u64().unwrap();
        // Every loop's first operation is of another kind, so even a slow start (SCRAM
        // logins in a debug build on a busy machine) covers all four.
        assert!(ops >= LOOPS as u64, "worker {id} did little: {w}");
        assert_eq!(w["unexpected_errors"], 0, "worker {id}: {w}");
        assert_eq!(w["wrong"], 0, "worker {id}: wrong results: {w}");
        assert_eq!(
            w["ok"].as_u64().unwrap(),
            ops,
            "worker {id}: every operation answered right: {w}"
        );
        // A quarter of the operations divide by zero (each loop cycles through the four);
        // each is a Query error and its connection answers the next query.
        let expected = w["expected_errors"].as_u64().unwrap();
        let slack = LOOPS as u64;
        assert!(
            expected + slack >= ops / 4 && expected <= ops / 4 + slack,
            "worker {id}: {w}"
        );
        assert_eq!(
            w["reused_after_error"], w["expected_errors"],
            "worker {id}: {w}"
        );
        assert!(w["committed"].as_u64().unwrap() > 0, "worker {id}: {w}");
        assert!(w["rolled_back"].as_u64().unwrap() > 0, "worker {id}: {w}");
        assert_eq!(
            w["rows_in_table"], w["committed"],
            "worker {id}: committed rows are there, rolled-back ones are not: {w}"
        );
        // Errors did not cost connections: none was closed, at most the pool's size opened.
        assert_eq!(w["closed"], 0, "worker {id}: {w}");
        assert!(
            w["created"].as_u64().unwrap() <= u64::from(POOL_SIZE),
            "{w}"
        );
    }
    let all_rows: i64 = bouncer
        .pg()
        .superuser_client()
        .await
        .query_one("SELECT count(*) FROM fleet", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(all_rows as u64, sum(&run.workers, "committed"));
    eprintln!(
        "fleet: {} processes, {} ops ({} expected errors, {} commits, {} rollbacks) in {:?}; \
         server connections at most {} over {} samples (default_pool_size {})",
        PROCESSES,
        sum(&run.workers, "ops"),
        sum(&run.workers, "expected_errors"),
        sum(&run.workers, "committed"),
        sum(&run.workers, "rolled_back"),
        run.took,
        run.max_server_connections,
        run.samples,
        bouncer.pool_size()
    );
    assert!(run.samples >= 20, "sampled {} times", run.samples);
    assert!(
        run.max_server_connections <= i64::from(bouncer.pool_size()),
        "PgBouncer opened {} server connections (default_pool_size {})",
        run.max_server_connections,
        bouncer.pool_size()
    );
    assert!(run.max_server_connections >= 1);
}

/// The negative control: the same kind of load through the client's named statements
/// fails behind the transaction pooler, so the test above could fail.
#[actix::test]
async fn named_statements_fail_behind_the_transaction_pooler() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let run = run_fleet(&bouncer, "named", 1500).await;
    for w in &run.workers {
        eprintln!("worker (named statements): {w}");
    }
    let prepared = sum(&run.workers, "prepared_errors");
    eprintln!(
        "named statements: {} ops, {} \"prepared statement\" errors, {} ok",
        sum(&run.workers, "ops"),
        prepared,
        sum(&run.workers, "ok")
    );
    assert!(
        prepared >= 1,
        "named statements behind a transaction pooler met no \"prepared statement\" error"
    );
}
