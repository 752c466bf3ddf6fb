//! The PostgreSQL backend with the real pool (supervisor + pool handle) against throwaway
//! servers from `tests/common`: never the machine's own PostgreSQL.
//!
//! Most tests share one server per binary and isolate themselves with a unique
//! `application_name`; tests that restart a server or need TLS start their own. Every pool
//! test ends by checking that the server's count of the pool's backends
//! (`pg_stat_activity` for its `application_name`) equals the pool's `stats().live`.
#![cfg(feature = "postgres")]

#[path = "../common/mod.rs"]
mod common;

mod basics;
mod budget;
mod cost;
mod failures;
mod reset;
mod tls;

use common::secs;
use common::PgServer;
use poolwarden::backends::postgres::{PgConnection, PostgresBackend};
use poolwarden::{BackendError, Error, PoolHandle};

type Pg = PostgresBackend;

// A pool that opens nothing in the background and never expires connections, so the
// figures depend on the test only.
use common::pg_pool::{pool_config, start_pool};

/// The invariant every pool test ends with: the server has exactly as many backends for
/// the pool's application_name as the pool counts live connections.
async fn assert_server_count_matches(pg: &PgServer, app: &str, pool: &PoolHandle<Pg>) {
    let live = pool.stats().live as i64;
    let seen = pg.wait_backend_connections(app, live, secs(10)).await;
    assert_eq!(
        seen,
        live,
        "server backends of `{app}` vs the pool's live count ({:?})",
        pool.stats()
    );
}

/// The server-side state (`idle`, `idle in transaction`, …) of backend `pid`.
async fn backend_state(pg: &PgServer, pid: i32) -> String {
    pg.superuser_client()
        .await
        .query_one("SELECT state FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .await
        .expect("the backend exists")
        .get(0)
}

async fn create_table(pg: &PgServer, name: &str) {
    pg.superuser_client()
        .await
        .batch_execute(&format!("CREATE TABLE {name} (x int)"))
        .await
        .expect("create table");
}

async fn admin_count(pg: &PgServer, table: &str) -> i64 {
    pg.superuser_client()
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count rows")
        .get(0)
}

/// Wait until every request written has been answered (a query that failed returns on the
/// ErrorResponse; the server's ReadyForQuery, which carries the new transaction status, can
/// arrive a moment later). Bounded: a count that never settles fails the test.
async fn settled(conn: &PgConnection) {
    let done = common::eventually(secs(5), || async {
        (conn.requests_in_flight() == 0).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "{} request(s) still in flight",
        conn.requests_in_flight()
    );
}

fn backend_error(err: &Error) -> &BackendError {
    err.backend_error()
        .unwrap_or_else(|| panic!("expected a backend error, got {err:?}"))
}
