//! Supervisor stats and health over member pools, shutdown, and every member connection
//! returned after mixed traffic.

use std::collections::HashMap;
use std::time::Duration;

use crate::{ms, pool_config, settle, start_set, within, INTERVAL};
use poolwarden::backends::sim::SimServer;
use poolwarden::{ConnectionConfig, Error, HealthStatus, PoolConfig, PoolKey};
use tokio::time::sleep;

#[actix::test]
async fn supervisor_stats_and_health_cover_member_pools() {
    let fx = start_set("observed", 2, |_| {}).await;
    let plain = fx
        .sup
        .pool(ConnectionConfig::sim("plain-observed"))
        .await
        .unwrap();
    drop(plain.acquire().await.unwrap());
    let held = fx.set.read().await.unwrap();

    let stats = fx.sup.stats().await.unwrap();
    let mut keys: Vec<PoolKey> = stats.per_pool.iter().map(|p| p.key).collect();
    let mut expected = fx.keys.clone();
    expected.push(plain.key());
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected, "3 members and the plain pool");
    assert_eq!(stats.pools, 4);
    assert_eq!(stats.in_use, 1, "the held read: {stats:?}");
    drop(held);

    let report = fx.sup.health().await.unwrap();
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.healthy, 4);
    fx.servers[2].go_down();
    let report = fx.sup.health().await.unwrap();
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    let unhealthy: Vec<PoolKey> = report.unhealthy.iter().map(|(k, _)| *k).collect();
    assert_eq!(unhealthy, vec![fx.keys[2]], "the replica that went down");
}

#[actix::test]
async fn shutdown_closes_every_member_pool() {
    let fx = start_set("shutdown", 3, |c| {
        c.pool = Some(PoolConfig {
            min_idle: 2,
            ..pool_config()
        })
    })
    .await;
    sleep(ms(1100)).await; // every member warms to min_idle
    for s in &fx.servers {
        assert!(s.open_connections() >= 2, "warmed: {s:?}");
    }
    // A plain pool beside the set.
    let plain = fx.sup.pool(ConnectionConfig::sim("plain")).await.unwrap();
    drop(plain.acquire().await.unwrap());

    let held = fx.set.read().await.unwrap();
    let held_key = held.key();
    actix::spawn(async move {
        sleep(ms(100)).await;
        drop(held);
    });
    let report = fx.sup.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        report.pools_closed, 5,
        "4 members and the plain pool: {report:?}"
    );
    assert_eq!(report.still_checked_out, 0, "{report:?}");
    settle().await;
    for s in fx.servers.iter().chain([&fx.sim.server("plain:1")]) {
        assert_eq!(s.open_connections(), 0, "{s:?}");
        assert_eq!(s.in_flight_connects(), 0, "{s:?}");
    }
    assert!(fx.set.member(held_key).unwrap().closed_pool);
    assert!(matches!(fx.set.read().await, Err(Error::ShuttingDown)));
    assert!(matches!(fx.set.write().await, Err(Error::ShuttingDown)));
    assert!(matches!(
        fx.sup.replica_set(fx.config.clone()).await,
        Err(Error::ShuttingDown)
    ));
    assert!(fx.sup.lookup_replica_set("shutdown").await.is_err());
    within(ms(100), "the set actor stops", || fx.set.actor().is_none()).await;
    // Nothing probes the members any more.
    let attempts: Vec<u64> = fx.servers.iter().map(SimServer::connect_attempts).collect();
    sleep(INTERVAL * 5).await;
    let later: Vec<u64> = fx.servers.iter().map(SimServer::connect_attempts).collect();
    assert_eq!(attempts, later);
}

#[actix::test]
async fn every_member_connection_is_returned_after_mixed_traffic() {
    let fx = start_set("books", 3, |_| {}).await;
    let mut counts: HashMap<PoolKey, usize> = HashMap::new();
    for i in 0..50 {
        if i % 5 == 0 {
            fx.write().await;
        } else {
            let conn = fx.set.read().await.unwrap();
            *counts.entry(conn.key()).or_default() += 1;
        }
    }
    assert_eq!(counts.values().sum::<usize>(), 40);
    for (i, s) in fx.servers.iter().enumerate() {
        let info = fx.info(i);
        assert_eq!(info.in_use, 0, "{info:?}");
        assert_eq!(s.open_connections(), info.idle, "{info:?} vs {s:?}");
    }
}
