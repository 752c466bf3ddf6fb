//! What is and is not evidence against a real PostgreSQL, under load with the breaker as
//! shipped: every backend of the pool terminated on a healthy server (no `CircuitOpen`,
//! no more errors than queries in flight), a role limited below the pool's size (the pool
//! serves with what the server accepted, shrinks its effective size, no `CircuitOpen`),
//! and a frozen server (acquires end at their deadline naming the phase; service back soon
//! after it thaws).

use std::sync::Arc;
use std::time::Duration;

use crate::common::load::Tally;
use crate::common::{ms, secs};
use crate::common::{PgOptions, PgServer};
use crate::{assert_server_count_matches, select_load, start_pool, QUERY_BUDGET, SLACK};
use poolwarden::{BreakerState, Error, Phase, PoolConfig};
use tokio::time::Instant;

/// The load: max_size 8, min_idle 2, acquire 2 s, connect and probe 1 s; the
/// breaker and everything else as shipped.
fn shipped() -> PoolConfig {
    PoolConfig {
        min_idle: 2,
        max_size: 8,
        acquire_timeout: secs(2),
        connect_timeout: secs(1),
        probe_timeout: secs(1),
        ..PoolConfig::default()
    }
}

fn circuit_open(ops: &[crate::common::load::Op]) -> usize {
    ops.iter()
        .filter(|o| {
            matches!(
                o.outcome,
                crate::common::load::Outcome::Acquire(Error::CircuitOpen { .. })
            )
        })
        .count()
}

#[actix::test]
async fn terminating_every_backend_of_a_healthy_server_costs_only_the_queries_in_flight() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("terminate");
    let config = shipped();
    let mut fx = start_pool(pg.config_for(&app), config.clone()).await;
    let load = select_load(&fx.pool, 32, QUERY_BUDGET);
    assert!(
        load.more_ok(500, secs(20)).await,
        "the load never got going"
    );
    let terminated = pg.terminate_backends(&app).await;
    assert!(terminated >= 2, "{terminated} backends terminated");
    assert!(
        load.more_ok(2_000, secs(20)).await,
        "stalled after the kill"
    );
    let ops = load.finish(secs(10)).await;
    let t = Tally::of(&ops);
    println!(
        "terminated {terminated}: {} ok, {} acquire errors, {} query errors; {:?}",
        t.ok,
        t.all_acquire_errors(),
        t.op_errors,
        fx.pool.stats()
    );
    assert_eq!(circuit_open(&ops), 0, "CircuitOpen on a healthy server");
    assert_eq!(
        t.all_acquire_errors(),
        0,
        "acquire errors on a healthy server"
    );
    assert!(
        t.op_errors <= config.max_size as usize,
        "{} query errors: more than could be in flight",
        t.op_errors
    );
    assert!(
        fx.all_events().is_empty(),
        "the breaker moved: {:?}",
        fx.all_events()
    );
    assert_server_count_matches(pg, &app, &fx.pool).await;
}

#[actix::test]
async fn a_role_limited_below_max_size_is_served_with_what_the_server_accepts() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("limited");
    let role = format!("pw_limited_{}", std::process::id());
    let admin = pg.superuser_client().await;
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD '{}' CONNECTION LIMIT 2",
            pg.password()
        ))
        .await
        .expect("role created");
    let mut connection = pg.config_for(&app);
    connection.user = Some(role.clone());
    let config = shipped();
    let mut fx = start_pool(connection, config.clone()).await;
    let load = select_load(&fx.pool, 32, QUERY_BUDGET);
    let started = Instant::now();
    assert!(load.more_ok(2_000, secs(30)).await, "stalled at the limit");
    let ops = load.finish(secs(10)).await;
    let t = Tally::of(&ops);
    let s = fx.pool.stats();
    println!(
        "limited to 2: {} ok in {:?}, {} acquire errors; {s:?}",
        t.ok,
        started.elapsed(),
        t.all_acquire_errors()
    );
    assert_eq!(
        circuit_open(&ops),
        0,
        "CircuitOpen while working connections exist"
    );
    assert_eq!(
        t.all_acquire_errors(),
        0,
        "callers waited for a returned connection"
    );
    assert_eq!(s.effective_size, 2, "{s:?}");
    assert_eq!(s.breaker, BreakerState::Closed);
    assert!(fx.all_events().is_empty(), "{:?}", fx.all_events());
    assert_server_count_matches(pg, &app, &fx.pool).await;
    drop(fx);
    let _ = admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await;
}

#[actix::test]
async fn a_frozen_server_times_acquires_out_at_their_deadline_and_service_returns_on_thaw() {
    let Some(pg) = PgServer::start_with(PgOptions::default()) else {
        return;
    };
    let pg = Arc::new(pg);
    let app = PgServer::unique_app("frozen");
    let config = shipped();
    let fx = start_pool(pg.config_for(&app), config.clone()).await;
    let load = select_load(&fx.pool, 32, QUERY_BUDGET);
    assert!(
        load.more_ok(500, secs(20)).await,
        "the load never got going"
    );
    assert!(pg.signal_all("STOP") > 0, "froze the server");
    tokio::time::sleep(secs(3)).await;
    let thawed = Instant::now();
    pg.signal_all("CONT");
    let back = crate::common::eventually(secs(10), || async { load.first_ok_after(thawed) })
        .await
        .expect("service back after the thaw");
    let ops = load.finish(secs(10)).await;
    for o in &ops {
        let took = o.ended - o.started;
        assert!(
            took <= config.acquire_timeout + QUERY_BUDGET + SLACK,
            "an op took {took:?}"
        );
        if let crate::common::load::Outcome::Acquire(e) = &o.outcome {
            match e {
                Error::Timeout { phase, .. } => {
                    assert!(matches!(phase, Phase::Wait | Phase::Connect | Phase::Probe))
                }
                other => panic!("a frozen server gave {other:?}, not a timeout naming its phase"),
            }
        }
    }
    let after = back.saturating_duration_since(thawed);
    println!("frozen 3s: service back {after:?} after the thaw");
    assert!(after <= ms(1_000), "service back {after:?} after the thaw");
    assert!(Duration::ZERO <= after);
}
