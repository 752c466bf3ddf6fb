//! The world and its servers, replication, and the serde forms of behaviour and role.

use std::time::Duration;

use super::{latency, ms, SimBackend, SimBehavior, SimRole, SimServer};
use crate::backends::Backend;
use crate::backends::Role;
use crate::connection::ConnectionConfig;
use crate::error::BackendErrorKind;

#[tokio::test]
async fn world_servers_and_defaults() {
    let sim = SimBackend::default();
    let shared = sim.clone();
    let b = sim.server("b:1");
    sim.set_default_behavior(latency(1, 2));
    let a = shared.server("a:1");
    assert_eq!(b.behavior(), SimBehavior::default());
    assert_eq!(a.behavior(), latency(1, 2));
    let names: Vec<String> = sim.servers().iter().map(SimServer::name).collect();
    assert_eq!(names, ["a:1", "b:1"]);

    // Handles share the server.
    sim.server("a:1").go_down();
    assert!(!a.is_up());
    let debug = format!("{sim:?}");
    assert!(
        debug.contains("a:1") && debug.contains("seed: 0"),
        "{debug}"
    );

    assert_eq!(a.role(), SimRole::Primary);
    a.set_role(SimRole::Replica);
    assert_eq!(shared.server("a:1").role(), SimRole::Replica);
    assert_eq!(a.lag(), Duration::ZERO);
    a.set_lag(ms(250));
    assert_eq!(a.lag(), ms(250));
}

#[tokio::test]
async fn replicas_follow_pause_resume_and_promote() {
    let sim = SimBackend::new(3);
    let (p, r, rr) = (sim.server("p:1"), sim.server("r:1"), sim.server("rr:1"));
    r.replicate_from(&p);
    rr.replicate_from(&r);
    assert_eq!(r.role(), SimRole::Replica);
    let mut primary = sim.connect(&ConnectionConfig::sim("p")).await.unwrap();
    let mut replica = sim.connect(&ConnectionConfig::sim("r")).await.unwrap();
    for _ in 0..3 {
        primary.query("INSERT INTO t VALUES (1)").await.unwrap();
    }
    primary.query("SELECT 1").await.unwrap();
    assert_eq!((p.position(), r.position(), rr.position()), (3, 3, 3));
    let err = replica.query("update t set x = 1").await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Query);
    assert_eq!(p.position(), 3, "a refused write changes nothing");

    r.pause_replay();
    primary.query("DELETE FROM t").await.unwrap();
    assert_eq!((p.position(), r.position(), rr.position()), (4, 3, 3));
    let status = sim.status(&mut replica).await.unwrap().unwrap();
    assert_eq!(status.role, Role::Replica);
    assert_eq!(status.position, Some(3));
    assert_eq!(status.lag, Some(ms(1)), "1 ms per write not replayed");
    r.resume_replay();
    assert_eq!(r.position(), 4);
    assert_eq!(
        sim.status(&mut replica).await.unwrap().unwrap().lag,
        Some(ms(0))
    );
    assert_eq!(sim.write_position(&mut primary).await.unwrap(), Some(4));

    // Promotion: takes writes from where it replayed, no longer follows the old one.
    p.go_down();
    r.promote();
    assert_eq!(r.role(), SimRole::Primary);
    replica.query("INSERT INTO t VALUES (2)").await.unwrap();
    assert_eq!((r.position(), p.position(), rr.position()), (5, 4, 5));
    let status = sim.status(&mut replica).await.unwrap().unwrap();
    assert_eq!((status.role, status.position), (Role::Primary, Some(5)));

    // Repointed, a replica keeps what it replayed; a loop of replicas terminates.
    rr.replicate_from(&p);
    assert_eq!(rr.position(), 5, "it had replayed 5 from r");
    p.come_up();
    p.replicate_from(&rr);
    assert_eq!((p.position(), rr.position()), (5, 5));
}

#[test]
fn behavior_and_role_serde() {
    let b: SimBehavior =
        serde_json::from_str(r#"{"connect_latency":"5ms","query_failure_rate":0.25}"#).unwrap();
    assert_eq!(
        b,
        SimBehavior {
            connect_latency: ms(5),
            query_failure_rate: 0.25,
            ..SimBehavior::default()
        }
    );
    let round: SimBehavior = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
    assert_eq!(round, b);
    let t: SimBehavior = toml::from_str("query_latency = \"1s 500ms\"").unwrap();
    assert_eq!(t.query_latency, ms(1500));

    assert_eq!(
        serde_json::to_string(&SimRole::Replica).unwrap(),
        "\"replica\""
    );
    let r: SimRole = serde_json::from_str("\"Primary\"").unwrap();
    assert_eq!(r, SimRole::Primary);
}
