//! Armed faults (failing, panicking and stalling operations), cancelled queries and
//! wrong passwords.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::time::{timeout, Instant};

use super::{latency, ms, setup};
use crate::backends::Backend;
use crate::error::BackendErrorKind;
use crate::secret::Secret;

#[tokio::test]
async fn fail_next_connects_is_deterministic() {
    let (sim, cfg, server) = setup("fail");
    server.fail_next_connects(2);
    for _ in 0..2 {
        let err = sim.connect(&cfg).await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Connect);
        assert!(err.is_retryable());
    }
    let _conn = sim.connect(&cfg).await.unwrap();
    assert_eq!(server.connect_attempts(), 3);
    assert_eq!(server.connects(), 1);
    assert_eq!(server.open_connections(), 1);

    // Connects refused because the server is down do not use up armed failures.
    server.fail_next_connects(1);
    server.go_down();
    assert!(sim.connect(&cfg).await.is_err());
    server.come_up();
    assert!(sim.connect(&cfg).await.is_err());
    assert!(sim.connect(&cfg).await.is_ok());
}

#[tokio::test]
async fn panic_on_connect_is_a_task_panic_and_releases_in_flight() {
    let (sim, cfg, server) = setup("panic");
    server.panic_on_next_connects(1);
    let task = {
        let (sim, cfg) = (sim.clone(), cfg.clone());
        tokio::spawn(async move { sim.connect(&cfg).await.map(drop) })
    };
    let err = task.await.unwrap_err();
    assert!(err.is_panic());
    let payload = err.into_panic();
    assert_eq!(
        payload.downcast_ref::<&str>().copied(),
        Some("simulated panic in connect")
    );
    assert_eq!(server.in_flight_connects(), 0);
    assert_eq!(server.connect_attempts(), 1);
    assert_eq!(server.open_connections(), 0);
    // Only one was armed.
    sim.connect(&cfg).await.unwrap();
}

#[tokio::test]
async fn panic_on_probe_and_reset() {
    let (sim, cfg, server) = setup("panic2");
    let mut conn = sim.connect(&cfg).await.unwrap();
    server.panic_on_next_probes(1);
    server.panic_on_next_resets(2);

    let res = AssertUnwindSafe(sim.probe(&mut conn)).catch_unwind().await;
    let payload = res.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>().copied(),
        Some("simulated panic in probe")
    );
    sim.probe(&mut conn).await.unwrap();

    for _ in 0..2 {
        let res = AssertUnwindSafe(sim.reset(&mut conn)).catch_unwind().await;
        assert_eq!(
            res.unwrap_err().downcast_ref::<&str>().copied(),
            Some("simulated panic in reset")
        );
    }
    sim.reset(&mut conn).await.unwrap();
    assert_eq!(server.queries(), 2);
}

#[tokio::test(start_paused = true)]
async fn stalled_connects_never_complete() {
    let (sim, cfg, server) = setup("stall");
    server.stall_next_connects(1);
    let t = Instant::now();
    assert!(timeout(ms(3_600_000), sim.connect(&cfg)).await.is_err());
    assert_eq!(t.elapsed(), ms(3_600_000));
    assert_eq!(server.in_flight_connects(), 0);
    assert_eq!(server.connect_attempts(), 1);
    assert_eq!(server.connects(), 0);
    assert!(timeout(ms(1), sim.connect(&cfg)).await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn stalled_probes_and_resets_never_complete_and_break_the_connection() {
    let (sim, cfg, server) = setup("stall2");
    let mut conn = sim.connect(&cfg).await.unwrap();
    server.stall_next_probes(1);
    assert!(timeout(ms(1000), sim.probe(&mut conn)).await.is_err());
    assert!(
        sim.is_broken(&mut conn),
        "a cancelled probe breaks the connection"
    );
    assert_eq!(server.open_connections(), 0);

    let mut conn = sim.connect(&cfg).await.unwrap();
    sim.probe(&mut conn).await.unwrap();
    server.stall_next_resets(1);
    assert!(timeout(ms(1000), sim.reset(&mut conn)).await.is_err());
    assert!(sim.is_broken(&mut conn));

    let mut conn = sim.connect(&cfg).await.unwrap();
    sim.reset(&mut conn).await.unwrap();
    assert!(!sim.is_broken(&mut conn));
}

#[tokio::test(start_paused = true)]
async fn a_query_cancelled_mid_flight_breaks_the_connection() {
    let (sim, cfg, server) = setup("cancel");
    server.set_behavior(latency(0, 50));
    let mut conn = sim.connect(&cfg).await.unwrap();
    assert!(timeout(ms(10), conn.query("SELECT pg_sleep(1)"))
        .await
        .is_err());
    assert!(conn.is_killed());
    assert_eq!(server.open_connections(), 0);
    assert_eq!(server.queries(), 0);
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_that_names_no_password() {
    let (sim, mut cfg, server) = setup("auth");
    server.set_password(Some("server-s3cret"));
    cfg.user = Some("app".into());
    cfg.password = Some(Secret::new("client-hunter2"));
    let err = sim.connect(&cfg).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Auth);
    assert!(!err.is_retryable());
    let shown = format!("{err} {err:?} {server:?} {sim:?}");
    assert!(shown.contains("password authentication failed for user \"app\""));
    for secret in ["server-s3cret", "client-hunter2", "s3cret", "hunter2"] {
        assert!(!shown.contains(secret), "{shown}");
    }

    cfg.password = None;
    assert_eq!(
        sim.connect(&cfg).await.unwrap_err().kind(),
        BackendErrorKind::Auth
    );
    cfg.password = Some(Secret::new("server-s3cret"));
    let conn = sim.connect(&cfg).await.unwrap();
    assert!(!format!("{conn:?}").contains("s3cret"));
    assert_eq!(server.connects(), 1);
    assert_eq!(server.connect_attempts(), 3);

    server.set_password(None);
    cfg.password = None;
    assert!(sim.connect(&cfg).await.is_ok());
}
