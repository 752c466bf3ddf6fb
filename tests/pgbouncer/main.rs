//! The PostgreSQL backend behind a real PgBouncer 1.18 (`pool_mode = transaction`) from
//! `tests/common/pgbouncer.rs`, each test with its own PgBouncer and its own PostgreSQL,
//! so server-side counts are exact.
//!
//! - `fleet.rs`: four OS processes (this binary re-run as workers), each with its own
//!   supervisor and pool, through one PgBouncer: parameterised queries, transactions and
//!   deliberate errors with the pooler-safe API; the same load through the client's
//!   named statements fails (the negative control).
//! - `pause.rs`: `PAUSE`/`RESUME` under load.
//! - `restart.rs`: PgBouncer stopped and started under load.
//! - `startup.rs`: what the startup packet carries under `pooler=transaction`, and
//!   `statement_timeout` by `SET LOCAL`.
#![cfg(feature = "postgres")]

#[path = "../common/mod.rs"]
mod common;

mod fleet;
mod pause;
mod restart;
mod startup;

use std::time::Duration;

use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::{BackendError, BackendErrorKind, ConnectionConfig, Error, PoolHandle};

type Pg = PostgresBackend;

/// `config` with `pooler=transaction`.
fn behind_pooler(mut config: ConnectionConfig) -> ConnectionConfig {
    config.options.insert("pooler".into(), "transaction".into());
    config
}

// A pool that opens nothing in the background and never expires connections.
use common::pg_pool::{pool_config, start_pool};

/// How a failure under load is named: `Ok(name)` for the errors a caller can act on
/// (timeouts with their phase, lost connections, an open breaker, a refused connect),
/// `Err(description)` for anything else.
fn named_pool_error(e: &Error) -> Result<String, String> {
    match e {
        Error::Timeout { phase, .. } => Ok(format!("Timeout({phase})")),
        Error::CircuitOpen { .. } => Ok("CircuitOpen".into()),
        Error::Backend { source, .. } => named_backend_error(source),
        other => Err(format!("{other:?}")),
    }
}

fn named_backend_error(e: &BackendError) -> Result<String, String> {
    match e.kind() {
        k @ (BackendErrorKind::Closed | BackendErrorKind::Connect | BackendErrorKind::Timeout) => {
            Ok(format!("{k:?}"))
        }
        _ => Err(e.to_string()),
    }
}

/// A query error named the same way (through `BackendError::from`).
fn named_query_error(e: tokio_postgres::Error) -> Result<String, String> {
    named_backend_error(&BackendError::from(e))
}

/// Wait until PgBouncer's client connections to the application database equal the pool's
/// live count (bounded); returns (clients, live) as last seen.
async fn clients_match_pool(
    bouncer: &common::PgBouncer,
    pool: &PoolHandle<Pg>,
    within: Duration,
) -> (usize, usize) {
    let last = std::cell::Cell::new((usize::MAX, pool.stats().live));
    let last_ref = &last;
    common::eventually(within, || async move {
        let live = pool.stats().live;
        let clients = bouncer.clients().await.unwrap_or(usize::MAX);
        last_ref.set((clients, live));
        (clients == live).then_some(())
    })
    .await;
    last.get()
}
