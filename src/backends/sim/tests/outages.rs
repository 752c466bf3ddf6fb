//! Scheduled outages, taking a server down and server-side kills.

use std::time::Duration;

use tokio::time::sleep;

use super::{latency, ms, setup};
use crate::backends::Backend;
use crate::error::BackendErrorKind;

#[tokio::test(start_paused = true)]
async fn scheduled_outage_fails_inside_the_window_and_works_after() {
    let (sim, cfg, server) = setup("flaky");
    let mut before = sim.connect(&cfg).await.unwrap();
    server.schedule_outage(ms(10), ms(50));
    assert!(server.is_up());
    let mut early = sim.connect(&cfg).await.unwrap();
    early.query("SELECT 1").await.unwrap();
    assert_eq!(server.open_connections(), 2);

    sleep(ms(10)).await;
    assert!(!server.is_up());
    // The connections open at the start of the outage are gone, even untouched.
    assert_eq!(server.open_connections(), 0);
    assert!(sim.is_broken(&mut early));
    let err = sim.connect(&cfg).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Connect);
    assert!(err.to_string().contains("connection refused"), "{err}");
    let err = before.query("SELECT 1").await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Closed);
    assert!(before.is_killed());

    sleep(ms(49)).await;
    assert!(!server.is_up());
    assert!(sim.connect(&cfg).await.is_err());

    sleep(ms(1)).await;
    assert!(server.is_up());
    let mut after = sim.connect(&cfg).await.unwrap();
    after.query("SELECT 1").await.unwrap();
    assert!(!sim.is_broken(&mut after));
    assert_eq!(server.open_connections(), 1);
    // Killed connections stay dead after the outage.
    assert_eq!(
        early.query("SELECT 1").await.unwrap_err().kind(),
        BackendErrorKind::Closed
    );
    drop((before, early));
    assert_eq!(server.open_connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_outage_noticed_late_only_kills_connections_opened_before_it() {
    let (sim, cfg, server) = setup("late");
    let mut old = sim.connect(&cfg).await.unwrap();
    server.schedule_outage(ms(5), ms(5));
    sleep(ms(20)).await; // the whole outage passes unobserved
    let mut new = sim.connect(&cfg).await.unwrap();
    assert_eq!(new.query("SELECT 1").await.unwrap(), 1);
    assert_eq!(
        old.query("SELECT 1").await.unwrap_err().kind(),
        BackendErrorKind::Closed
    );
    assert!(!new.is_killed());
    assert_eq!(server.open_connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn outage_during_query_latency_fails_the_query() {
    let (sim, cfg, server) = setup("mid");
    server.set_behavior(latency(0, 20));
    let mut conn = sim.connect(&cfg).await.unwrap();
    server.schedule_outage(ms(10), ms(100));
    let err = conn.query("SELECT 1").await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Closed);
    assert!(conn.is_killed());
    assert_eq!(server.queries(), 0);
}

#[tokio::test(start_paused = true)]
async fn zero_length_outage_is_a_restart_blip_and_come_up_ends_an_outage() {
    let (sim, cfg, server) = setup("blip");
    let conn = sim.connect(&cfg).await.unwrap();
    server.schedule_outage(Duration::ZERO, Duration::ZERO);
    assert!(conn.is_killed());
    assert!(server.is_up());
    assert!(sim.connect(&cfg).await.is_ok());

    server.schedule_outage(Duration::ZERO, ms(1000));
    assert!(!server.is_up());
    server.come_up();
    assert!(server.is_up());
    assert!(sim.connect(&cfg).await.is_ok());
}

#[tokio::test]
async fn go_down_kills_open_connections() {
    let (sim, cfg, server) = setup("down");
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(sim.connect(&cfg).await.unwrap());
    }
    assert_eq!(server.open_connections(), 3);
    server.go_down();
    assert!(!server.is_up());
    assert_eq!(server.open_connections(), 0);
    for conn in &mut conns {
        assert!(sim.is_broken(conn));
        let err = conn.query("SELECT 1").await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Closed);
        assert_eq!(
            sim.probe(conn).await.unwrap_err().kind(),
            BackendErrorKind::Closed
        );
        assert_eq!(
            sim.reset(conn).await.unwrap_err().kind(),
            BackendErrorKind::Closed
        );
    }
    let err = sim.connect(&cfg).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Connect);
    assert!(err.is_retryable());
    assert!(err.to_string().contains("connection refused"));

    server.come_up();
    let fresh = sim.connect(&cfg).await.unwrap();
    assert_eq!(server.open_connections(), 1);
    drop(conns); // already counted as closed: not counted twice
    assert_eq!(server.open_connections(), 1);
    assert!(!fresh.is_killed());
    assert_eq!(server.connects(), 4);
    assert_eq!(server.connect_attempts(), 5);
}

#[tokio::test]
async fn kill_connection_and_kill_all() {
    let (sim, cfg, server) = setup("kill");
    let mut a = sim.connect(&cfg).await.unwrap();
    let mut b = sim.connect(&cfg).await.unwrap();
    let mut c = sim.connect(&cfg).await.unwrap();
    assert!(server.kill_connection(a.id()));
    assert!(sim.is_broken(&mut a));
    assert!(!sim.is_broken(&mut b));
    assert_eq!(server.open_connections(), 2);
    assert!(!server.kill_connection(a.id()), "already dead");
    assert!(!server.kill_connection(9_999), "unknown id");
    assert_eq!(
        a.query("SELECT 1").await.unwrap_err().kind(),
        BackendErrorKind::Closed
    );
    b.query("SELECT 1").await.unwrap();

    // Another server does not know this connection.
    assert!(!sim.server("elsewhere:1").kill_connection(b.id()));

    assert_eq!(server.kill_all(), 2);
    assert!(sim.is_broken(&mut b) && sim.is_broken(&mut c));
    assert_eq!(server.open_connections(), 0);
    assert_eq!(server.kill_all(), 0);
    drop((a, b, c));
    assert_eq!(server.open_connections(), 0);
    // The server is still up.
    assert!(sim.connect(&cfg).await.is_ok());
}
