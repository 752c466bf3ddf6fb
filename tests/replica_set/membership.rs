//! Membership: members added and removed at run time.

use std::time::Duration;

use crate::{default_read, settle, start_set, INTERVAL};
use poolwarden::{ConnectionConfig, PoolKey, Role};
use tokio::time::sleep;

#[actix::test]
async fn members_can_be_added_and_removed_at_run_time() {
    let mut fx = start_set("members", 2, |_| {}).await;
    assert_eq!(fx.reads(20, default_read()).await, vec![0, 10, 10]);

    let r3 = ConnectionConfig::sim("members-r3");
    let r3_server = fx.sim.server(&r3.primary_host());
    r3_server.replicate_from(fx.primary());
    let key = fx.set.add_member(r3.clone(), Role::Replica).await.unwrap();
    assert_eq!(key, PoolKey::of(&r3));
    fx.keys.push(key);
    fx.servers.push(r3_server.clone());
    settle().await;
    let info = fx.info(3);
    assert_eq!(
        (info.role, info.usable, info.lag),
        (Role::Replica, true, Some(Duration::ZERO))
    );
    assert_eq!(r3_server.connects(), 1, "probed as soon as it was added");
    assert_eq!(fx.reads(300, default_read()).await, vec![0, 100, 100, 100]);
    // Adding it again changes nothing.
    assert_eq!(fx.set.add_member(r3, Role::Replica).await.unwrap(), key);
    assert_eq!(fx.set.topology().len(), 4);

    // Remove r1 while a read holds one of its connections.
    let held = loop {
        let conn = fx.set.read().await.unwrap();
        if conn.key() == fx.keys[1] {
            break conn;
        }
    };
    assert!(fx.set.remove_member(fx.keys[1]).await.unwrap());
    assert!(fx.set.topology().iter().all(|m| m.key != fx.keys[1]));
    assert!(fx.set.member(fx.keys[1]).is_none());
    assert_eq!(
        fx.servers[1].open_connections(),
        1,
        "the held one is still out"
    );
    drop(held);
    settle().await;
    assert_eq!(
        fx.servers[1].open_connections(),
        0,
        "closed on return, not reused"
    );
    let before = fx.servers[1].connect_attempts();
    let counts = fx.reads(200, default_read()).await;
    assert_eq!(counts, vec![0, 0, 100, 100]);
    sleep(INTERVAL * 3).await;
    assert_eq!(
        fx.servers[1].connect_attempts(),
        before,
        "nothing probes a removed member"
    );
    assert!(
        !fx.set.remove_member(fx.keys[1]).await.unwrap(),
        "not a member any more"
    );
}
