//! MariaDB: `ALTER USER … IDENTIFIED BY` under load with the new password handed in, and
//! a wrong password in either order. Each test connects as a user of its own and ends by
//! counting that user's connections in the process list.

use crate::common::load::{Load, Pace};
use crate::common::{eventually, ms, secs, MariaServer};
use crate::{assert_clean, auth_refused, warmed};
use mysql_async::prelude::Queryable;
use poolwarden::backends::mysql::MysqlBackend;
use poolwarden::{ConnectionConfig, PoolConfig, Secret, SupervisorHandle};

fn pool_config(min_idle: u32) -> PoolConfig {
    crate::server_pool_config(min_idle, secs(3))
}

fn supervisor() -> SupervisorHandle<MysqlBackend> {
    crate::server_supervisor(MysqlBackend::new())
}

fn with_password(cfg: &ConnectionConfig, password: &str) -> ConnectionConfig {
    let mut c = cfg.clone();
    c.password = Some(Secret::new(password));
    c
}

#[actix::test]
async fn alter_user_under_load_with_the_new_password_handed_in_fails_no_acquire() {
    let Some(server) = MariaServer::shared() else {
        return;
    };
    let (old_pw, new_pw, wrong) = ("Lemur8Basalt3", "Crane1Velvet6", "Shrew4Opal7");
    let user = MariaServer::unique_user("rot");
    server.create_user(&user, old_pw);
    let mut cfg = server.config();
    cfg.user = Some(user.clone());
    cfg.password = Some(Secret::new(old_pw));
    let sup = supervisor();
    let pool = sup.pool_with(cfg.clone(), pool_config(4)).await.unwrap();
    warmed(&pool, 4).await;
    let created = pool.stats().created;
    assert_eq!(server.processlist_count(&user), 4);

    let load = Load::start(&pool, 8, Pace::backoff(ms(10)), |_, mut conn| async move {
        match conn.query_first::<i64, _>("SELECT 1").await {
            Ok(Some(1)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert!(
        load.reached(200, secs(30)).await,
        "the load never got going"
    );
    server
        .sql(&format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{new_pw}'"))
        .unwrap();
    assert!(load.more_ok(100, secs(30)).await);
    assert_clean(
        &auth_refused(sup.pool(with_password(&cfg, wrong)).await),
        &[old_pw, new_pw, wrong],
    );
    sup.pool(with_password(&cfg, new_pw))
        .await
        .expect("the new password authenticates");
    crate::went_on_without_errors(load).await;

    let s = pool.stats();
    assert_eq!(s.credential_rotations, 1);
    assert!(
        s.closed >= 4 && s.created > created,
        "old ones closed, new ones opened: {s:?}"
    );
    let settled = eventually(secs(10), || {
        let live = pool.stats().live;
        std::future::ready((server.processlist_count(&user) == live).then_some(()))
    })
    .await;
    assert!(
        settled.is_some(),
        "process list vs the pool's live count: {:?}",
        pool.stats()
    );
    assert_clean(&auth_refused(sup.pool(cfg).await), &[old_pw, new_pw, wrong]);
}

#[actix::test]
async fn a_wrong_password_in_either_order_never_gets_a_connection() {
    let Some(server) = MariaServer::shared() else {
        return;
    };
    let (right, wrong) = ("Otter5Cinder2", "Viper9Atlas4");
    let sup = supervisor();

    // Right first.
    let user = MariaServer::unique_user("rf");
    server.create_user(&user, right);
    let mut cfg = server.config();
    cfg.user = Some(user.clone());
    cfg.password = Some(Secret::new(right));
    let pool = sup.pool_with(cfg.clone(), pool_config(0)).await.unwrap();
    drop(pool.acquire().await.unwrap());
    let before = pool.stats();
    assert_clean(
        &auth_refused(sup.pool(with_password(&cfg, wrong)).await),
        &[right, wrong],
    );
    let after = pool.stats();
    assert_eq!(
        (after.created, after.live, after.connect_errors),
        (before.created, before.live, before.connect_errors)
    );
    assert_eq!(server.processlist_count(&user), 1);

    // Wrong first.
    let user = MariaServer::unique_user("wf");
    server.create_user(&user, right);
    cfg.user = Some(user.clone());
    let wrong_handle = sup
        .pool_with(with_password(&cfg, wrong), pool_config(0))
        .await
        .unwrap();
    assert_clean(&auth_refused(wrong_handle.acquire().await), &[right, wrong]);
    let right_handle = sup.pool(cfg.clone()).await.unwrap();
    drop(right_handle.acquire().await.expect("served"));
    assert_clean(&auth_refused(wrong_handle.acquire().await), &[right, wrong]);
    assert_eq!(server.processlist_count(&user), right_handle.stats().live);
}
