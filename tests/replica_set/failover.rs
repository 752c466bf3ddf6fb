//! Failover and topology: promotion seen by the set and told to subscribers, writes during
//! and without a failover, one set per name, configured roles corrected by the servers,
//! and an old primary that comes back still saying it is one.

use std::sync::{Arc, Mutex};

use crate::{default_read, ms, settle, start_set, within, ACQUIRE, INTERVAL, PROBE};
use actix::prelude::*;
use poolwarden::backends::sim::SimRole;
use poolwarden::messages::{RoleChanged, Topology};
use poolwarden::{BackendErrorKind, CausalityToken, Error, MemberInfo, Phase, PoolKey, Role};
use tokio::time::{sleep, Instant};

/// Collects role changes.
struct Collector(Arc<Mutex<Vec<RoleChanged>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<RoleChanged> for Collector {
    type Result = ();
    fn handle(&mut self, msg: RoleChanged, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg);
    }
}

fn roles(topology: &[MemberInfo]) -> Vec<(PoolKey, Role, bool)> {
    topology.iter().map(|m| (m.key, m.role, m.usable)).collect()
}

#[actix::test]
async fn failover_moves_writes_to_the_promoted_replica_and_tells_subscribers() {
    let fx = start_set("failover", 3, |_| {}).await;
    let events: Arc<Mutex<Vec<RoleChanged>>> = Arc::default();
    let collector = Collector(Arc::clone(&events)).start();
    fx.sup
        .subscribe_topology(collector.recipient())
        .await
        .unwrap();
    let k = fx.keys.clone();
    assert_eq!(fx.write().await.0, k[0]);

    // The primary dies; a failover manager promotes r1 and repoints the others.
    let killed_at = Instant::now();
    fx.primary().go_down();
    fx.servers[1].promote();
    fx.servers[2].replicate_from(&fx.servers[1]);
    fx.servers[3].replicate_from(&fx.servers[1]);
    assert_eq!(fx.servers[1].role(), SimRole::Primary);

    let took = within(INTERVAL + PROBE, "the set sees r1 as its primary", || {
        let t = fx.set.topology();
        t.iter()
            .any(|m| m.key == k[1] && m.role == Role::Primary && m.usable)
            && t.iter().any(|m| m.key == k[0] && !m.usable)
    })
    .await;
    assert!(took <= INTERVAL, "one topology round: {took:?}");
    let (key, token) = fx.write().await;
    assert_eq!(key, k[1], "writes go to the new primary");
    assert_eq!(
        token,
        CausalityToken(2),
        "r1 took over at the replayed position 1"
    );
    assert!(killed_at.elapsed() <= INTERVAL + PROBE);

    // `topology()` and the `Topology` message agree on the roles.
    let expected = vec![
        (k[0], Role::Primary, false),
        (k[1], Role::Primary, true),
        (k[2], Role::Replica, true),
        (k[3], Role::Replica, true),
    ];
    assert_eq!(roles(&fx.set.topology()), expected);
    let by_message = fx
        .set
        .actor()
        .expect("running")
        .send(Topology)
        .await
        .unwrap();
    assert_eq!(roles(&by_message), expected);

    // Reads: r2 and r3 only (r1 is a primary now, the old primary is down).
    assert_eq!(fx.reads(10, default_read()).await, vec![0, 0, 5, 5]);

    settle().await;
    {
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(
            (e.set.as_str(), e.key, e.from, e.to),
            ("failover", k[1], Role::Replica, Role::Primary)
        );
        assert_eq!(e.host, "failover-r1:1");
        assert!(e.at >= killed_at && e.at <= killed_at + INTERVAL);
    }

    // The old primary comes back as a replica of r1: another event, and it reads again.
    fx.primary().replicate_from(&fx.servers[1]);
    fx.primary().come_up();
    within(ms(3000), "the old primary rejoins as a replica", || {
        fx.info(0).role == Role::Replica && fx.usable(0)
    })
    .await;
    settle().await;
    {
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        let e = &events[1];
        assert_eq!((e.key, e.from, e.to), (k[0], Role::Primary, Role::Replica));
    }
    assert_eq!(fx.write().await.0, k[1], "writes stay on the new primary");
    assert_eq!(fx.reads(30, default_read()).await, vec![10, 0, 10, 10]);
}

#[actix::test]
async fn a_write_issued_during_a_failover_lands_on_the_new_primary() {
    let fx = start_set("midway", 2, |_| {}).await;
    fx.primary().go_down();
    let t0 = Instant::now();
    let write = {
        let set = fx.set.clone();
        actix::spawn(async move {
            let mut conn = set.write().await.map_err(|e| e.to_string())?;
            conn.query("INSERT INTO t VALUES (1)")
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((conn.key(), Instant::now()))
        })
    };
    // The failover manager takes 300 ms to promote r1.
    sleep(ms(300)).await;
    assert!(!write.is_finished(), "no primary yet: the write waits");
    fx.servers[1].promote();
    fx.servers[2].replicate_from(&fx.servers[1]);
    let (key, at) = write
        .await
        .unwrap()
        .expect("the write went through, no error for the caller");
    assert_eq!(key, fx.keys[1], "on the promoted member");
    assert!(
        at - t0 <= ms(300) + INTERVAL,
        "as soon as a round saw it: {:?}",
        at - t0
    );
    assert_eq!(fx.servers[1].position(), 1);
    assert_eq!(fx.primary().position(), 0);
}

#[actix::test]
async fn a_write_with_no_primary_in_sight_times_out_at_its_deadline() {
    let fx = start_set("noprimary", 1, |_| {}).await;
    fx.primary().go_down();
    let start = Instant::now();
    let err = fx.set.write().await.expect_err("nobody takes writes");
    let took = start.elapsed();
    assert!(took >= ACQUIRE && took <= ACQUIRE + ms(1), "{took:?}");
    match &err {
        Error::Timeout {
            key,
            phase,
            last_error,
            ..
        } => {
            assert_eq!(*key, fx.keys[0]);
            assert_eq!(*phase, Phase::Connect);
            let last = last_error.as_ref().expect("the last connect error");
            assert_eq!(last.kind(), BackendErrorKind::Connect, "{err}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The replica was never asked to take the write.
    assert_eq!(fx.servers[1].position(), 0);
}

#[actix::test]
async fn a_set_is_registered_once_and_found_by_name() {
    let fx = start_set("named", 2, |_| {}).await;
    let again = fx.sup.replica_set(fx.config.clone()).await.unwrap();
    assert_eq!(again.name(), "named");
    assert!(again.actor() == fx.set.actor(), "the same set actor");
    let found = fx.sup.lookup_replica_set("named").await.unwrap();
    assert_eq!(roles(&found.topology()), roles(&fx.set.topology()));
    assert_eq!(
        roles(&fx.set.topology()),
        vec![
            (fx.keys[0], Role::Primary, true),
            (fx.keys[1], Role::Replica, true),
            (fx.keys[2], Role::Replica, true),
        ]
    );
    match fx.sup.lookup_replica_set("nope").await {
        Err(Error::UnknownPool { name }) => assert_eq!(name, "nope"),
        other => panic!("expected UnknownPool, got {other:?}"),
    }
    // One pool per member, shared by both handles.
    let conn = again.read().await.unwrap();
    assert_eq!(fx.set.member(conn.key()).unwrap().in_use, 1);
}

#[actix::test]
async fn a_configured_role_is_corrected_by_what_the_server_says() {
    let fx = start_set("roles", 2, |_| {}).await;
    let t0 = Instant::now();
    let events: Arc<Mutex<Vec<RoleChanged>>> = Arc::default();
    fx.sup
        .subscribe_topology(Collector(Arc::clone(&events)).start().recipient())
        .await
        .unwrap();
    // A replica the configuration got wrong: listed as a replica, but the server says
    // primary (say, promoted before the application started).
    fx.servers[1].set_role(SimRole::Primary);
    // Meanwhile r2 hangs: its next connect never completes.
    fx.servers[2].kill_all();
    fx.servers[2].stall_next_connects(1);
    within(INTERVAL, "r1 is seen as a primary", || {
        fx.info(1).role == Role::Primary
    })
    .await;
    settle().await;
    {
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.key, e.from, e.to),
            (fx.keys[1], Role::Replica, Role::Primary)
        );
        // Published when r1 answered, not when the round's slowest member gave up.
        assert!(e.at <= t0 + INTERVAL, "{:?} after start", e.at - t0);
    }
    assert!(fx.usable(2), "r2's probe is still waiting");
    within(PROBE + ms(2), "hung r2 is ejected", || !fx.usable(2)).await;
    assert_eq!(
        fx.servers[2].in_flight_connects(),
        0,
        "the stalled connect was dropped"
    );
}

#[actix::test]
async fn an_old_primary_back_before_it_is_demoted_gets_no_writes() {
    let fx = start_set("splitbrain", 2, |_| {}).await;
    let k = fx.keys.clone();
    fx.primary().go_down();
    fx.servers[1].promote();
    fx.servers[2].replicate_from(&fx.servers[1]);
    within(INTERVAL + PROBE, "the set sees r1 as its primary", || {
        fx.info(1).role == Role::Primary && fx.usable(1)
    })
    .await;
    // The old primary restarts as it was, still a primary, before anyone repoints it.
    fx.primary().come_up();
    within(INTERVAL * 3, "the old primary is reachable again", || {
        fx.usable(0)
    })
    .await;
    assert_eq!(fx.info(0).role, Role::Primary, "it still says so");
    for _ in 0..5 {
        assert_eq!(
            fx.write().await.0,
            k[1],
            "writes stay on the promoted member"
        );
    }
}
