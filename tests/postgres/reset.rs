//! Reset on return: abandoned and failed transactions, `needs_reset` following the server's
//! transaction status, and the `DISCARD ALL` mode.

use crate::common;
use crate::common::PgServer;
use crate::common::{ms, secs};
use crate::{
    admin_count, assert_server_count_matches, backend_state, create_table, pool_config, settled,
    start_pool, Pg,
};
use poolwarden::backends::postgres::{PostgresBackend, TransactionStatus};
use poolwarden::{Backend, PooledConnection};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
enum Way {
    /// `batch_execute("BEGIN; INSERT …")`
    Batch,
    /// `simple_query("BEGIN")` then an insert
    SimpleQuery,
    /// `execute("BEGIN", &[])` (extended protocol) then an insert
    Execute,
    /// `transaction()` dropped without commit (tokio-postgres queues a ROLLBACK)
    DroppedTransaction,
    /// a transaction that failed: status `E`
    FailedTransaction,
}

async fn open_transaction_and_insert(conn: &mut PooledConnection<Pg>, way: Way, table: &str) {
    let insert = format!("INSERT INTO {table} VALUES (1)");
    match way {
        Way::Batch => conn
            .batch_execute(&format!("BEGIN; {insert}"))
            .await
            .expect("batch"),
        Way::SimpleQuery => {
            conn.simple_query("BEGIN").await.expect("BEGIN");
            conn.simple_query(&insert).await.expect("insert");
        }
        Way::Execute => {
            conn.execute("BEGIN", &[]).await.expect("BEGIN");
            conn.execute(&insert, &[]).await.expect("insert");
        }
        Way::DroppedTransaction => {
            let tx = conn.transaction().await.expect("transaction");
            tx.execute(&insert, &[]).await.expect("insert");
            // dropped here, not committed
        }
        Way::FailedTransaction => {
            conn.batch_execute(&format!("BEGIN; {insert}"))
                .await
                .expect("batch");
            conn.batch_execute("SELECT 1/0")
                .await
                .expect_err("division by zero");
            settled(conn).await;
            assert_eq!(conn.transaction_status(), TransactionStatus::Failed);
        }
    }
    if !matches!(way, Way::DroppedTransaction | Way::FailedTransaction) {
        assert_eq!(conn.transaction_status(), TransactionStatus::InTransaction);
    }
}

#[actix::test]
async fn an_abandoned_transaction_is_rolled_back_before_reuse() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("abandon");
    // One connection: the next borrower necessarily gets the one just returned.
    let (_sup, pool) = start_pool(pg.config_for(&app), pool_config(1)).await;

    // Positive control for the log check below: a ROLLBACK outside a transaction is logged.
    let admin = pg.superuser_client().await;
    let admin_pid: i32 = admin
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    admin.batch_execute("ROLLBACK").await.unwrap();
    let warning = |pid: i32| format!("[{pid}] WARNING:  there is no transaction in progress");
    assert!(
        common::wait_for(secs(5), || pg
            .log()
            .contains(&warning(admin_pid))
            .then_some(()))
        .is_some(),
        "the server log shows stray ROLLBACKs"
    );

    for way in [
        Way::Batch,
        Way::SimpleQuery,
        Way::Execute,
        Way::DroppedTransaction,
        Way::FailedTransaction,
    ] {
        let table = format!(
            "abandon_{}_{}",
            format!("{way:?}").to_lowercase(),
            &common::random_hex()[..6]
        );
        create_table(pg, &table).await;

        let mut first = pool.acquire().await.expect("acquire");
        let pid = first.backend_pid();
        open_transaction_and_insert(&mut first, way, &table).await;
        drop(first); // returned without COMMIT

        let second = pool.acquire().await.expect("acquire after reset");
        assert_eq!(second.backend_pid(), pid, "{way:?}: same connection");
        assert_eq!(
            second.transaction_status(),
            TransactionStatus::Idle,
            "{way:?}"
        );
        assert_eq!(backend_state(pg, pid).await, "idle", "{way:?}: server side");
        let rows: i64 = second
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "{way:?}: the uncommitted row is not visible");
        assert_eq!(admin_count(pg, &table).await, 0, "{way:?}: nor to others");
        // Not inside a transaction: an insert is visible to others at once.
        second
            .execute(&format!("INSERT INTO {table} VALUES (2)"), &[])
            .await
            .unwrap();
        assert_eq!(
            admin_count(pg, &table).await,
            1,
            "{way:?}: the next borrower autocommits"
        );
        drop(second);
        assert!(
            !pg.log().contains(&warning(pid)),
            "{way:?}: the reset sent a ROLLBACK outside a transaction"
        );
    }
    let s = pool.stats();
    assert_eq!(
        (s.created, s.closed),
        (1, 0),
        "resets kept the connection: {s:?}"
    );
    assert_server_count_matches(pg, &app, &pool).await;
}

/// The reset decision, step by step, on the backend directly (no pool).
#[actix::test]
async fn needs_reset_follows_the_server_transaction_status() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("status");
    let backend = PostgresBackend::new();
    let mut c = backend
        .connect(&pg.config_for(&app))
        .await
        .expect("connect");
    assert!(!backend.needs_reset(&c), "fresh");

    c.execute("SELECT 1", &[]).await.unwrap();
    c.query("SELECT generate_series(1, 1000)", &[])
        .await
        .unwrap();
    // execute/query return at CommandComplete; the ReadyForQuery follows.
    settled(&c).await;
    assert!(
        !backend.needs_reset(&c),
        "autocommit queries leave it clean"
    );

    c.batch_execute("BEGIN").await.unwrap();
    assert_eq!(c.transaction_status(), TransactionStatus::InTransaction);
    assert!(backend.needs_reset(&c));
    c.batch_execute("COMMIT").await.unwrap();
    assert!(!backend.needs_reset(&c), "committed");

    // COPY FROM STDIN (extended protocol, with the Sync the server ignores) stays in step.
    c.batch_execute("CREATE TEMP TABLE cp (x int)")
        .await
        .unwrap();
    {
        use futures::SinkExt;
        let sink = c
            .copy_in::<str, &'static [u8]>("COPY cp FROM STDIN")
            .await
            .unwrap();
        futures::pin_mut!(sink);
        sink.send(&b"1\n2\n"[..]).await.unwrap();
        assert_eq!(sink.finish().await.unwrap(), 2);
    }
    settled(&c).await;
    assert!(!backend.needs_reset(&c), "after copy_in");

    // A failed transaction.
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute("SELECT 1/0").await.unwrap_err();
    settled(&c).await;
    assert_eq!(c.transaction_status(), TransactionStatus::Failed);
    assert!(backend.needs_reset(&c));
    backend.reset(&mut c).await.expect("reset");
    assert_eq!(c.transaction_status(), TransactionStatus::Idle);
    assert!(!backend.needs_reset(&c));

    // A query whose future was dropped while the server still runs it: in flight, so the
    // reset waits for it (a barrier) instead of handing the connection out busy.
    let abandoned = tokio::time::timeout(ms(20), c.batch_execute("SELECT pg_sleep(0.3)")).await;
    assert!(abandoned.is_err(), "the query was still running");
    assert_eq!(c.requests_in_flight(), 1);
    assert!(backend.needs_reset(&c));
    let t = Instant::now();
    backend.reset(&mut c).await.expect("reset");
    assert!(
        t.elapsed() >= ms(200),
        "the reset waited: {:?}",
        t.elapsed()
    );
    assert!(!backend.needs_reset(&c));

    backend.probe(&mut c).await.expect("probe");
    assert!(!backend.is_broken(&mut c));
    drop(c);
    assert_eq!(pg.wait_backend_connections(&app, 0, secs(10)).await, 0);
}

/// `reset=discard_all`: session state (settings, temporary tables, LISTEN, advisory locks,
/// cursors) does not survive a return, and custom-type lookups keep working afterwards
/// (tokio-postgres's cached type-lookup statements are not deallocated).
#[actix::test]
async fn discard_all_mode_clears_session_state() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("discard");
    let suffix = &common::random_hex()[..6];
    let (e1, e2) = (format!("mood_a_{suffix}"), format!("mood_b_{suffix}"));
    pg.superuser_client()
        .await
        .batch_execute(&format!(
            "CREATE TYPE {e1} AS ENUM ('ok'); CREATE TYPE {e2} AS ENUM ('ok');"
        ))
        .await
        .unwrap();
    let mut cfg = pg.config_for(&app);
    cfg.options.insert("reset".into(), "discard_all".into());
    let (_sup, pool) = start_pool(cfg, pool_config(1)).await;

    let first = pool.acquire().await.unwrap();
    let pid = first.backend_pid();
    first
        .batch_execute(
            "SET work_mem = '7MB'; CREATE TEMP TABLE scratch (x int); LISTEN pw_channel; \
             SELECT pg_advisory_lock(4242)",
        )
        .await
        .unwrap();
    // Left inside an open transaction too: rollback and discard in one go.
    first
        .batch_execute("BEGIN; DECLARE cur CURSOR WITH HOLD FOR SELECT 1; COMMIT; BEGIN")
        .await
        .unwrap();
    let held: i64 = first
        .query_one("SELECT count(*) FROM pg_cursors WHERE name = 'cur'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 1);
    first
        .prepare(&format!("SELECT 'ok'::{e1}"))
        .await
        .expect("type lookup");
    drop(first);

    let second = pool.acquire().await.unwrap();
    assert_eq!(second.backend_pid(), pid);
    let work_mem: String = second.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "4MB", "settings were reset");
    let temp: i64 = second
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(temp, 0, "temporary tables were dropped");
    let listening: i64 = second
        .query_one("SELECT count(*) FROM pg_listening_channels()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(listening, 0, "UNLISTEN *");
    let locks: i64 = second
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(locks, 0, "advisory locks released");
    let cursors: i64 = second
        .query_one("SELECT count(*) FROM pg_cursors WHERE name = 'cur'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cursors, 0, "cursors closed");
    assert_eq!(second.transaction_status(), TransactionStatus::Idle);
    second
        .prepare(&format!("SELECT 'ok'::{e2}"))
        .await
        .expect("a new type lookup after the session reset");
    drop(second);
    assert_eq!(pool.stats().closed, 0);
    assert_server_count_matches(pg, &app, &pool).await;
}
