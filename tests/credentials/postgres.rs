//! PostgreSQL: `ALTER ROLE … PASSWORD` under load with the new password handed in, and a
//! wrong password in either order. Each test logs in as a role of its own, with an
//! `application_name` of its own, and ends by counting the server's backends.

use std::collections::HashSet;

use crate::common::load::{Load, Pace, Tally};
use crate::common::{eventually, ms, secs, PgServer};
use crate::{assert_clean, auth_refused, refused, warmed};
use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::{ConnectionConfig, PoolConfig, PoolHandle, Secret, SupervisorHandle};

type Pg = PostgresBackend;

fn pool_config(min_idle: u32) -> PoolConfig {
    crate::server_pool_config(min_idle, secs(5))
}

fn supervisor() -> SupervisorHandle<Pg> {
    crate::server_supervisor(PostgresBackend::new())
}

/// A new login role with `password`, and a config (its own application_name) for it.
async fn new_role(pg: &PgServer, prefix: &str, password: &str) -> (ConnectionConfig, String) {
    let app = PgServer::unique_app(prefix);
    let role = app.replace('-', "_");
    pg.superuser_client()
        .await
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        .await
        .expect("create role");
    let mut cfg = pg.config_for(&app);
    cfg.user = Some(role.clone());
    cfg.password = Some(Secret::new(password));
    (cfg, role)
}

fn with_password(cfg: &ConnectionConfig, password: &str) -> ConnectionConfig {
    let mut c = cfg.clone();
    c.password = Some(Secret::new(password));
    c
}

/// The server has exactly the backends of `app` the pool counts live: nothing leaked.
async fn assert_backends_match(pg: &PgServer, app: &str, pool: &PoolHandle<Pg>) {
    let live = pool.stats().live as i64;
    let seen = pg.wait_backend_connections(app, live, secs(10)).await;
    assert_eq!(
        seen,
        live,
        "server backends vs the pool's live count: {:?}",
        pool.stats()
    );
}

#[actix::test]
async fn alter_role_password_under_load_with_the_new_password_handed_in_fails_no_acquire() {
    let Some(pg) = PgServer::shared() else { return };
    let (old_pw, new_pw) = ("Tapir5Glacier1", "Ibis7Tundra4");
    let (cfg, role) = new_role(pg, "rotate", old_pw).await;
    let app = cfg.application_name.clone().unwrap();
    let sup = supervisor();
    let pool = sup.pool_with(cfg.clone(), pool_config(4)).await.unwrap();
    warmed(&pool, 4).await;
    let old_pids: HashSet<i32> = pg.backend_pids(&app).await.into_iter().collect();
    assert_eq!(old_pids.len(), 4);

    let load = Load::start(&pool, 8, Pace::backoff(ms(10)), |_, conn| async move {
        conn.query_one("SELECT 1", &[])
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    });
    assert!(
        load.reached(200, secs(30)).await,
        "the load never got going"
    );

    // The password changes on the server (open sessions stay logged in) …
    pg.superuser_client()
        .await
        .batch_execute(&format!("ALTER ROLE {role} PASSWORD '{new_pw}'"))
        .await
        .unwrap();
    assert!(load.more_ok(100, secs(30)).await);
    // … and the new one is handed in: verified, and taken up.
    let rotated = sup.pool(with_password(&cfg, new_pw)).await.unwrap();
    assert_eq!(rotated.key(), pool.key());
    load.mark();
    assert!(load.more_ok(400, secs(30)).await, "the load went on");
    let ops = load.finish(secs(15)).await;
    let t = Tally::of(&ops);
    assert_eq!(
        (t.acquire_errors, t.circuit_open, t.op_errors),
        (0, 0, 0),
        "no acquire or query failed: {t:?}"
    );
    assert!(t.ok_after_mark > 0);

    // The sessions of the old password were closed as they came back.
    let gone = eventually(secs(10), || async {
        let now: HashSet<i32> = pg.backend_pids(&app).await.into_iter().collect();
        now.is_disjoint(&old_pids).then_some(())
    })
    .await;
    assert!(gone.is_some(), "an old session is still open");
    assert_eq!(pool.stats().credential_rotations, 1);
    assert_backends_match(pg, &app, &pool).await;
    // New connections log in with the new password.
    let conn = pool.acquire().await.unwrap();
    drop(conn);
    assert_clean(
        &auth_refused(sup.pool(with_password(&cfg, old_pw)).await),
        &[old_pw, new_pw],
    );
    assert_backends_match(pg, &app, &pool).await;
}

#[actix::test]
async fn a_wrong_password_in_either_order_never_gets_a_connection() {
    let Some(pg) = PgServer::shared() else { return };
    let (right, wrong) = ("Quokka2Delta8", "Bison6Ridge3");
    let secrets = [right, wrong];

    // Right first, then wrong: refused, the pool untouched.
    let (cfg, _) = new_role(pg, "right-first", right).await;
    let app = cfg.application_name.clone().unwrap();
    let sup = supervisor();
    let pool = sup.pool_with(cfg.clone(), pool_config(0)).await.unwrap();
    drop(pool.acquire().await.unwrap());
    let before = pool.stats();
    assert_clean(
        &auth_refused(sup.pool(with_password(&cfg, wrong)).await),
        &secrets,
    );
    assert_clean(
        &auth_refused(sup.acquire(with_password(&cfg, wrong)).await),
        &secrets,
    );
    let mut none = cfg.clone();
    none.password = None;
    assert_clean(&refused(sup.pool(none).await), &secrets);
    let after = pool.stats();
    assert_eq!(
        (
            after.created,
            after.closed,
            after.live,
            after.connect_errors,
            after.credential_rotations
        ),
        (
            before.created,
            before.closed,
            before.live,
            before.connect_errors,
            0
        )
    );
    assert_eq!(pg.backend_connections(&app).await, 1);
    assert_backends_match(pg, &app, &pool).await;

    // Wrong first, then right: the right caller is served, the wrong one never.
    let (cfg, _) = new_role(pg, "wrong-first", right).await;
    let app = cfg.application_name.clone().unwrap();
    let wrong_handle = sup
        .pool_with(with_password(&cfg, wrong), pool_config(0))
        .await
        .unwrap();
    assert_clean(&auth_refused(wrong_handle.acquire().await), &secrets);
    let right_handle = sup.pool(cfg.clone()).await.expect("verified and taken up");
    let conn = right_handle.acquire().await.expect("served");
    let who: String = conn
        .query_one("SELECT current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(Some(who), cfg.user.clone());
    drop(conn);
    assert_clean(&auth_refused(wrong_handle.acquire().await), &secrets);
    assert_eq!(right_handle.stats().in_use, 0);
    assert_backends_match(pg, &app, &right_handle).await;
}
