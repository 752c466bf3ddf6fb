//! Random failures: deterministic under a seed, one stream per server, rates 0 and 1.

use super::{server_seed, setup, SimBackend, SimBehavior};
use crate::backends::Backend;
use crate::connection::ConnectionConfig;
use crate::error::BackendErrorKind;

#[tokio::test]
async fn failures_are_deterministic_under_a_seed() {
    let dice = SimBehavior {
        connect_failure_rate: 0.5,
        query_failure_rate: 0.5,
        ..SimBehavior::default()
    };
    let run = |seed| {
        let dice = dice.clone();
        async move {
            let sim = SimBackend::new(seed);
            sim.set_default_behavior(dice);
            let cfg = ConnectionConfig::sim("dice");
            let mut connects = Vec::new();
            let mut conn = None;
            for _ in 0..64 {
                match sim.connect(&cfg).await {
                    Ok(c) => {
                        connects.push(true);
                        conn.get_or_insert(c);
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), BackendErrorKind::Connect);
                        connects.push(false);
                    }
                }
            }
            let mut conn = conn.expect("some connect succeeds");
            let mut queries = Vec::new();
            for _ in 0..64 {
                match conn.query("SELECT 1").await {
                    Ok(_) => queries.push(true),
                    Err(e) => {
                        assert_eq!(e.kind(), BackendErrorKind::Query);
                        queries.push(false);
                    }
                }
            }
            assert!(!conn.is_killed(), "query failures do not kill");
            (connects, queries)
        }
    };
    let (c1, q1) = run(11).await;
    let (c2, q2) = run(11).await;
    assert_eq!(c1, c2);
    assert_eq!(q1, q2);
    for outcomes in [&c1, &q1] {
        let ok = outcomes.iter().filter(|o| **o).count();
        assert!((10..=54).contains(&ok), "about half succeed: {ok}/64");
    }
    let (c3, q3) = run(12).await;
    assert!(c3 != c1 || q3 != q1, "another seed, another sequence");
}

#[tokio::test]
async fn servers_of_a_world_have_different_streams() {
    let sim = SimBackend::new(5);
    sim.set_default_behavior(SimBehavior {
        connect_failure_rate: 0.5,
        ..SimBehavior::default()
    });
    let mut outcomes = Vec::new();
    for name in ["a", "b"] {
        let cfg = ConnectionConfig::sim(name);
        let mut v = Vec::new();
        for _ in 0..64 {
            v.push(sim.connect(&cfg).await.is_ok());
        }
        outcomes.push(v);
    }
    assert_ne!(outcomes[0], outcomes[1]);
    assert_eq!(server_seed(5, "a"), server_seed(5, "a"));
    assert_ne!(server_seed(5, "a"), server_seed(6, "a"));
}

#[tokio::test]
async fn failure_rates_of_zero_and_one() {
    let (sim, cfg, server) = setup("rates");
    server.set_behavior(SimBehavior {
        connect_failure_rate: 1.0,
        ..SimBehavior::default()
    });
    assert_eq!(
        sim.connect(&cfg).await.unwrap_err().kind(),
        BackendErrorKind::Connect
    );
    server.set_behavior(SimBehavior::default());
    let mut conn = sim.connect(&cfg).await.unwrap();
    server.set_behavior(SimBehavior {
        query_failure_rate: 1.0,
        ..SimBehavior::default()
    });
    let err = sim.probe(&mut conn).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Query);
    assert!(!sim.is_broken(&mut conn));
    assert_eq!(server.queries(), 1, "the failed probe reached the server");
}
