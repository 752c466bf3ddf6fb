//! Through the fault proxy, slow links: added latency, a link where a connect takes longer
//! than the probe budget, and probes in flight against the `min_idle` refill.

use std::time::Duration;

use crate::common;
use crate::common::load::Tally;
use crate::common::PgServer;
use crate::common::{ms, secs};
use crate::{
    assert_server_count_matches, proxy_config, select_load, start_pool, start_proxy, via,
    PROBE_TIMEOUT, QUERY_BUDGET,
};
use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::{Backend, BreakerConfig, BreakerState, PoolConfig};
use tokio::time::Instant;

#[actix::test]
async fn added_latency_slows_queries_but_fails_nothing() {
    let Some(pg) = PgServer::shared() else { return };
    let proxy = start_proxy(pg);
    let app = PgServer::unique_app("latency");
    let config = PoolConfig {
        // Probe on every checkout: a slow link must not fail probes within their budget.
        checkout_bypass: Duration::ZERO,
        // A background probe that finds no idle connection opens one within this budget;
        // a connect is about five round trips (TCP, startup, SCRAM), 400 ms at this
        // latency. (Below that, see `background_probes_do_not_fail_a_slow_but_working_endpoint`.)
        probe_timeout: secs(1),
        ..proxy_config()
    };
    let mut fx = start_pool(via(&proxy, pg.config_for(&app)), config).await;
    // Warm: connections exist before the latency starts.
    let conns: Vec<_> = futures::future::join_all((0..2).map(|_| fx.pool.acquire())).await;
    drop(conns);

    let latency = ms(40);
    proxy.set_latency(latency);
    let load = select_load(&fx.pool, 2, QUERY_BUDGET);
    assert!(load.more_ok(20, secs(20)).await, "no progress with latency");
    let ops = load.finish(secs(10)).await;
    let t = Tally::of(&ops);
    // Each op is a checkout probe and a query (the typed API: the unnamed statement, one
    // round trip): at least two round trips, each crossing the proxy twice.
    let fastest = ops.iter().map(|o| o.ended - o.started).min().expect("ops");
    println!(
        "latency {latency:?} each way: {} ops, fastest {fastest:?}, slowest {:?}; {:?}",
        t.ok,
        t.longest,
        fx.pool.stats()
    );
    assert_eq!((t.all_acquire_errors(), t.op_errors), (0, 0), "{t:?}");
    assert!(fastest >= latency * 4, "latency applied: {fastest:?}");
    let s = fx.pool.stats();
    assert_eq!(
        (s.closed, s.connect_errors, s.timeouts),
        (0, 0, 0),
        "nothing judged dead: {s:?}"
    );
    assert_eq!(s.breaker, BreakerState::Closed);
    assert!(
        fx.all_events().is_empty(),
        "no breaker transition under mere latency"
    );

    proxy.set_latency(Duration::ZERO);
    let t = Instant::now();
    let conn = fx.pool.acquire().await.expect("acquire");
    conn.query_one("SELECT 1", &[]).await.expect("query");
    drop(conn);
    assert!(t.elapsed() < latency * 2, "fast again: {:?}", t.elapsed());
    assert_server_count_matches(pg, &app, &fx.pool).await;
}

/// A pool with no idle connection, on a link where a connect takes longer than
/// `probe_timeout` but well within `connect_timeout`: acquires work, so the endpoint is
/// up, and background probes must not open its breaker.
#[actix::test]
async fn background_probes_do_not_fail_a_slow_but_working_endpoint() {
    let Some(pg) = PgServer::shared() else { return };
    let proxy = start_proxy(pg);
    let app = PgServer::unique_app("slowlink");
    let latency = ms(50); // a connect: ~5 round trips, ~500 ms
    let config = PoolConfig {
        connect_timeout: secs(2),
        breaker: BreakerConfig {
            failure_threshold: 3,
            success_threshold: 1,
            open_for: ms(300),
            grow_after: std::time::Duration::ZERO,
            max_open_for: ms(300),
        },
        ..proxy_config() // probes every 200 ms with a 300 ms budget; min_idle 0
    };
    proxy.set_latency(latency);
    // What a connect takes through the slow link (a plain backend, no pool).
    let t = Instant::now();
    let plain = PostgresBackend::new()
        .connect(&via(&proxy, pg.config_for(&app)))
        .await
        .expect("connect through the slow link");
    let connect = t.elapsed();
    drop(plain);
    assert!(
        connect > PROBE_TIMEOUT && connect < config.connect_timeout,
        "the premise: {connect:?}"
    );
    // A fresh pool with min_idle 0 has no connection: each background probe opens one.
    let mut fx = start_pool(via(&proxy, pg.config_for(&app)), config.clone()).await;

    // Enough time for a dozen background probes.
    let opened = fx.next_to(BreakerState::Open, secs(3)).await;
    let s = fx.pool.stats();
    println!(
        "slow link ({latency:?} each way, a connect took {connect:?}): breaker {:?} after probes; {s:?}",
        opened.as_ref().map(|o| o.reason.clone())
    );
    assert!(
        opened.is_none(),
        "background probes opened the breaker of a working endpoint: {:?}; {s:?}",
        opened.map(|o| o.reason)
    );
    let conn = fx
        .pool
        .acquire()
        .await
        .expect("an acquire connects through the slow link");
    conn.query_one("SELECT 1", &[]).await.expect("query");
    drop(conn);
    proxy.set_latency(Duration::ZERO);
    assert_server_count_matches(pg, &app, &fx.pool).await;
}

/// No traffic, `min_idle` 1, a slow link: a background probe takes the idle connection out
/// of the pool for a round trip (30 ms here), and the maintenance refill must not count it
/// as missing and open another; nor may a probe that finds no idle connection while the
/// warm-up's connect is under way open a second one.
#[actix::test]
async fn a_probe_in_flight_does_not_make_the_refill_open_beyond_min_idle() {
    let Some(pg) = PgServer::shared() else { return };
    let proxy = start_proxy(pg);
    let app = PgServer::unique_app("refill");
    let config = PoolConfig {
        min_idle: 1,
        probe_interval: Some(ms(20)),
        maintenance_interval: ms(20),
        probe_timeout: secs(1),
        ..proxy_config()
    };
    let fx = start_pool(via(&proxy, pg.config_for(&app)), config).await;
    let warm = common::eventually(secs(10), || async {
        (fx.pool.stats().created >= 1).then_some(())
    })
    .await;
    assert!(warm.is_some(), "warmed up: {:?}", fx.pool.stats());
    proxy.set_latency(ms(15));
    // Two seconds of probes (about 70) and refills (100) with nothing else going on.
    let extra = common::eventually(secs(2), || async {
        let s = fx.pool.stats();
        (s.created > 1).then_some(s)
    })
    .await;
    assert!(
        extra.is_none(),
        "opened beyond min_idle with no traffic: {extra:?}"
    );
    proxy.set_latency(Duration::ZERO);
    assert_server_count_matches(pg, &app, &fx.pool).await;
}
