//! The SQLite backend through the real pool, on temporary files: what a connect sets up,
//! writers queueing on the write gate, reads beside a long write, a shared in-memory
//! database, reset of a transaction left open, a cancelled operation, error kinds, and the
//! config shape (a path, not a host).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use futures::FutureExt;
use poolwarden::backends::sqlite::{SqliteBackend, SqliteConnection};
use poolwarden::{
    Backend, BackendErrorKind, ConnectionConfig, Error, Host, PoolConfig, PoolHandle, PoolKey,
    SupervisorConfig, SupervisorHandle,
};
use rusqlite::types::Value;

/// No warm-up, no idle timeout, no lifetime, no probe on checkout.
fn pool_config(max_size: u32) -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size,
        acquire_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(10),
        probe_timeout: Duration::from_secs(10),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        test_on_checkout: false,
        ..PoolConfig::default()
    }
}

fn supervisor() -> SupervisorHandle<SqliteBackend> {
    SupervisorHandle::start(SqliteBackend::default(), SupervisorConfig::default()).unwrap()
}

async fn pool(url: &str, max_size: u32) -> PoolHandle<SqliteBackend> {
    let cfg = ConnectionConfig::parse(url).unwrap();
    supervisor()
        .pool_with(cfg, pool_config(max_size))
        .await
        .unwrap()
}

/// A URL for `name` in a fresh temporary directory (kept alive by the returned guard).
fn temp_url(name: &str, query: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/{name}{query}", dir.path().display());
    (dir, url)
}

async fn count(conn: &mut SqliteConnection, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    conn.with(move |c| c.query_row(&sql, [], |r| r.get(0)))
        .await
        .unwrap()
}

#[actix::test]
async fn a_connect_sets_wal_busy_timeout_and_foreign_keys() {
    let (_dir, url) = temp_url("setup.db", "?busy_timeout=1500ms");
    let pool = pool(&url, 2).await;
    let mut conn = pool.acquire().await.unwrap();
    let (journal, busy, fk) = conn
        .with(|c| {
            let journal: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let busy: i64 = c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?;
            let fk: i64 = c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
            Ok((journal, busy, fk))
        })
        .await
        .unwrap();
    assert_eq!((journal.as_str(), busy, fk), ("wal", 1500, 1));
    assert!(conn.path().is_absolute(), "{:?}", conn.path());

    // The default busy timeout is 5 s; foreign keys can be turned off.
    let (_dir, url) = temp_url("defaults.db", "?foreign_keys=off");
    let pool = self::pool(&url, 1).await;
    let mut conn = pool.acquire().await.unwrap();
    let (busy, fk): (i64, i64) = conn
        .with(|c| {
            Ok((
                c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?,
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((busy, fk), (5000, 0));
    SqliteBackend::default().probe(&mut conn).await.unwrap();
}

#[actix::test]
async fn concurrent_writers_queue_on_the_write_gate() {
    const WRITERS: usize = 8;
    const INSERTS: usize = 40;
    // busy_timeout=0: a writer that met another one inside SQLite would fail at once, so
    // zero errors means the gate did the queueing.
    let (_dir, url) = temp_url("writers.db", "?busy_timeout=0");
    let pool = pool(&url, WRITERS as u32).await;
    let mut setup = pool.acquire().await.unwrap();
    setup
        .execute("CREATE TABLE t (writer INTEGER, n INTEGER)", vec![])
        .await
        .unwrap();
    drop(setup);
    // Open every connection before the load, so that it measures writes only.
    let mut warm = Vec::new();
    for _ in 0..WRITERS {
        warm.push(pool.acquire().await.unwrap());
    }
    drop(warm);

    let inside = Arc::new(AtomicUsize::new(0));
    let most_inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let pool = pool.clone();
        let (inside, most_inside) = (Arc::clone(&inside), Arc::clone(&most_inside));
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            let mut errors = 0;
            for n in 0..INSERTS {
                let (inside, most_inside) = (Arc::clone(&inside), Arc::clone(&most_inside));
                let res = conn
                    .write(move |tx| {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most_inside.fetch_max(now, Ordering::SeqCst);
                        let r = tx.execute("INSERT INTO t VALUES (?1, ?2)", [w as i64, n as i64]);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        r
                    })
                    .await;
                if let Err(e) = res {
                    eprintln!("writer {w}: {e}");
                    errors += 1;
                }
            }
            errors
        }));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await.unwrap();
    }
    assert_eq!(errors, 0);
    assert_eq!(
        most_inside.load(Ordering::SeqCst),
        1,
        "one writer at a time"
    );
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(count(&mut conn, "t").await, (WRITERS * INSERTS) as i64);
    let per_writer = conn
        .query(
            "SELECT count(DISTINCT n) FROM t GROUP BY writer ORDER BY writer",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        per_writer,
        vec![vec![Value::Integer(INSERTS as i64)]; WRITERS]
    );
}

#[actix::test]
async fn reads_run_while_a_write_transaction_is_open() {
    let (_dir, url) = temp_url("readers.db", "");
    let pool = pool(&url, 4).await;
    let mut writer = pool.acquire().await.unwrap();
    writer
        .execute("CREATE TABLE t (x INTEGER)", vec![])
        .await
        .unwrap();
    let mut reader = pool.acquire().await.unwrap();
    let mut second_writer = pool.acquire().await.unwrap();

    // The write holds its transaction open until told to commit.
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let write = tokio::spawn(async move {
        writer
            .write(move |tx| {
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                Ok(())
            })
            .await
            .unwrap();
        writer
    });
    started.await.unwrap();

    // Readers are not held up and see the last commit: the writer is still waiting for
    // `go`, so these reads cannot have waited for it.
    let mut reads = Vec::new();
    for _ in 0..3 {
        reads.push(count(&mut reader, "t").await);
    }
    assert_eq!(reads, vec![0, 0, 0]);
    assert!(!write.is_finished());

    // Another writer queues behind the gate: not ready while the first one holds it, and
    // giving up the wait leaves its connection usable.
    let queued = second_writer
        .write(|tx| tx.execute("INSERT INTO t VALUES (2)", []))
        .now_or_never();
    assert!(queued.is_none(), "the second writer waits for the gate");
    assert!(!second_writer.is_broken());

    go.send(()).unwrap();
    let writer = write.await.unwrap();
    assert!(!writer.is_broken() && !writer.in_transaction());
    assert_eq!(count(&mut reader, "t").await, 1);
    second_writer
        .write(|tx| tx.execute("INSERT INTO t VALUES (2)", []))
        .await
        .unwrap();
    assert_eq!(count(&mut reader, "t").await, 2);
}

#[actix::test]
async fn an_in_memory_database_is_shared_by_the_pools_connections() {
    let sup = supervisor();
    let cfg = ConnectionConfig::parse("sqlite::memory:").unwrap();
    let pool = sup.pool_with(cfg.clone(), pool_config(4)).await.unwrap();
    let mut a = pool.acquire().await.unwrap();
    a.execute("CREATE TABLE t (x TEXT)", vec![]).await.unwrap();
    a.write(|tx| tx.execute("INSERT INTO t VALUES ('shared')", []))
        .await
        .unwrap();
    let mut b = pool.acquire().await.unwrap();
    assert_eq!(pool.stats().live, 2, "two connections");
    let rows = b.query("SELECT x FROM t", vec![]).await.unwrap();
    assert_eq!(rows, vec![vec![Value::Text("shared".into())]]);

    // Another pool (other options: another key) and another backend get databases of
    // their own.
    let other = sup
        .pool_with(
            ConnectionConfig::parse("sqlite::memory:?busy_timeout=1s").unwrap(),
            pool_config(1),
        )
        .await
        .unwrap();
    assert_ne!(other.key(), pool.key());
    let mut c = other.acquire().await.unwrap();
    let tables = c
        .query("SELECT name FROM sqlite_master", vec![])
        .await
        .unwrap();
    assert!(tables.is_empty(), "{tables:?}");
    let elsewhere = supervisor().pool_with(cfg, pool_config(1)).await.unwrap();
    assert_eq!(elsewhere.key(), pool.key());
    let mut d = elsewhere.acquire().await.unwrap();
    assert!(d
        .query("SELECT name FROM sqlite_master", vec![])
        .await
        .unwrap()
        .is_empty());
}

#[actix::test]
async fn a_transaction_left_open_is_rolled_back_on_release() {
    let (_dir, url) = temp_url("reset.db", "");
    let pool = pool(&url, 1).await;
    let mut conn = pool.acquire().await.unwrap();
    conn.execute("CREATE TABLE t (x INTEGER)", vec![])
        .await
        .unwrap();
    assert!(
        !SqliteBackend::default().needs_reset(&conn),
        "clean: no reset"
    );
    conn.with(|c| c.execute_batch("BEGIN; INSERT INTO t VALUES (1);"))
        .await
        .unwrap();
    assert!(conn.in_transaction());
    assert!(SqliteBackend::default().needs_reset(&conn));
    drop(conn);

    // The only connection comes back rolled back, not replaced.
    let mut again = pool.acquire().await.unwrap();
    assert!(!again.in_transaction());
    assert_eq!(count(&mut again, "t").await, 0);
    let s = pool.stats();
    assert_eq!((s.created, s.closed), (1, 0), "{s:?}");
}

#[actix::test]
async fn a_cancelled_operation_leaves_a_connection_that_is_not_reused() {
    let (_dir, url) = temp_url("cancel.db", "");
    let pool = pool(&url, 2).await;
    let mut conn = pool.acquire().await.unwrap();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    {
        let op = conn.with(move |c| {
            c.execute_batch("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (1);")?;
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            Ok(())
        });
        tokio::select! {
            _ = op => panic!("the operation cannot finish before `go`"),
            _ = started => {} // drops `op` mid-operation
        }
    }
    assert!(conn.is_broken());
    let err = conn.query("SELECT 1", vec![]).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Closed, "{err}");
    let first = conn.path().to_path_buf();
    drop(conn);
    go.send(()).unwrap(); // let the abandoned closure end

    let s = pool.stats();
    assert_eq!((s.live, s.closed), (0, 1), "closed, not kept: {s:?}");
    let mut fresh = pool.acquire().await.unwrap();
    assert!(!fresh.is_broken());
    assert_eq!(fresh.path(), first);
    assert_eq!(pool.stats().created, 2);
    // The abandoned transaction was never committed.
    let tables = fresh
        .query("SELECT name FROM sqlite_master WHERE name = 't'", vec![])
        .await
        .unwrap();
    assert!(tables.len() <= 1);
    if !tables.is_empty() {
        assert_eq!(count(&mut fresh, "t").await, 0);
    }
}

#[actix::test]
async fn a_lock_held_past_busy_timeout_is_a_timeout() {
    let (_dir, url) = temp_url("busy.db", "?busy_timeout=0");
    let pool = pool(&url, 2).await;
    let mut holder = pool.acquire().await.unwrap();
    holder
        .with(|c| c.execute_batch("CREATE TABLE t (x INTEGER); BEGIN IMMEDIATE;"))
        .await
        .unwrap();
    let mut other = pool.acquire().await.unwrap();
    // Outside the write gate, a second writer meets the lock inside SQLite.
    let err = other
        .with(|c| c.execute_batch("BEGIN IMMEDIATE"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Timeout, "{err}");
    assert!(!other.is_broken());
}

#[actix::test]
async fn unusable_files_are_config_errors_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_db = dir.path().join("text.db");
    std::fs::write(&not_a_db, b"this is not a database, not even close to one").unwrap();
    for url in [
        format!("sqlite://{}/no/such/dir/a.db", dir.path().display()),
        format!("sqlite://{}/missing.db?mode=rw", dir.path().display()),
        format!("sqlite://{}", not_a_db.display()),
    ] {
        let pool = pool(&url, 1).await;
        match pool.acquire().await {
            Err(Error::Backend { source, .. }) => {
                assert_eq!(source.kind(), BackendErrorKind::Config, "{url}: {source}");
                assert!(!source.is_retryable());
                assert!(!source.to_string().contains("sqlite://"), "{source}");
            }
            Err(other) => panic!("{url}: expected a backend config error, got {other}"),
            Ok(_) => panic!("{url}: connected"),
        }
        assert_eq!(pool.stats().connect_errors, 1, "{url}: tried once");
    }
}

#[actix::test]
async fn bad_configs_are_errors_naming_the_field() {
    let sup = supervisor();
    let field = |e: Error| match e {
        Error::Config(e) => e.field,
        other => panic!("expected a config error, got {other}"),
    };
    // Through the URL parser.
    for (url, want) in [
        ("sqlite://localhost/a.db", "connection.hosts"),
        ("sqlite://db:5432/a.db", "connection.hosts[0].port"),
        ("sqlite://", "connection.path"),
        ("sqlite://app:secret@x/a.db", "connection.password"),
        ("sqlite:///tmp/a.db?password=secret", "connection.password"),
        ("sqlite:///tmp/a.db?cache=shared", "connection.options"),
        (
            "sqlite:///tmp/a.db?busy_timeout=never",
            "connection.options.busy_timeout",
        ),
    ] {
        let e = ConnectionConfig::parse(url).expect_err(url);
        assert_eq!(e.field, want, "{url}: {e}");
        assert!(!e.to_string().contains("secret"), "{e}");
    }
    // Built in code: the supervisor runs the same validation.
    let base = ConnectionConfig::sqlite("/tmp/poolwarden-never-opened.db");
    let mut host = base.clone();
    host.hosts.push(Host {
        host: "db".into(),
        port: 5432,
    });
    let mut empty = base.clone();
    empty.path = Some("".into());
    let mut password = base.clone();
    password.password = Some(poolwarden::Secret::new("secret"));
    let mut unknown = base.clone();
    unknown.options.insert("synchronous".into(), "off".into());
    let mut no_path = base.clone();
    no_path.path = None;
    for (cfg, want) in [
        (host, "connection.hosts"),
        (empty, "connection.path"),
        (password, "connection.password"),
        (unknown, "connection.options"),
        (no_path, "connection.path"),
    ] {
        assert_eq!(field(sup.pool(cfg).await.unwrap_err()), want);
    }
    // From TOML.
    let e = toml::from_str::<ConnectionConfig>(
        "backend = \"sqlite\"\npath = \"/a.db\"\nhosts = [{ host = \"db\", port = 1 }]",
    )
    .unwrap_err();
    assert!(e.to_string().contains("connection.hosts"), "{e}");
}

#[actix::test]
async fn relative_and_absolute_spellings_are_one_pool() {
    let cwd = std::env::current_dir().unwrap();
    let spellings = [
        "sqlite://pw-same-key.db".to_string(),
        "sqlite://./pw-same-key.db".to_string(),
        "sqlite:pw-same-key.db".to_string(),
        format!("sqlite://{}/pw-same-key.db", cwd.display()),
        format!("sqlite://{}/tests/../pw-same-key.db", cwd.display()),
    ];
    let sup = supervisor();
    let mut keys = Vec::new();
    for url in &spellings {
        let cfg = ConnectionConfig::parse(url).unwrap();
        // Resolving a pool opens no connection (min_idle 0).
        let pool = sup.pool_with(cfg.clone(), pool_config(1)).await.unwrap();
        assert_eq!(pool.key(), PoolKey::of(&cfg));
        keys.push(pool.key());
    }
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
    assert_eq!(sup.stats().await.unwrap().pools, 1);
    assert!(!cwd.join("pw-same-key.db").exists());
}
