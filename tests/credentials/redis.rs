//! Redis: an ACL user's password changed (`ACL SETUSER … resetpass >new`) under load with
//! the new one handed in, the `default` user's `requirepass` changed, and a wrong
//! password in either order. Each test runs its own server (they change its users) and
//! ends by counting the clients the server sees.

use std::collections::HashSet;

use crate::common::load::{Load, Pace};
use crate::common::redis_server::RespConn;
use crate::common::{eventually, ms, secs, RedisOptions, RedisServer};
use crate::{assert_clean, auth_refused, warmed};
use poolwarden::backends::redis::RedisBackend;
use poolwarden::{ConnectionConfig, PoolConfig, Secret, SupervisorHandle};
use redis::AsyncCommands;

fn pool_config(min_idle: u32) -> PoolConfig {
    crate::server_pool_config(min_idle, secs(2))
}

fn supervisor() -> SupervisorHandle<RedisBackend> {
    crate::server_supervisor(RedisBackend::new())
}

fn config(
    server: &RedisServer,
    user: Option<&str>,
    password: &str,
    name: &str,
) -> ConnectionConfig {
    let mut c = server.config();
    c.user = user.map(str::to_string);
    c.password = Some(Secret::new(password));
    c.application_name = Some(name.into());
    c
}

/// `CLIENT LIST` ids of the clients named `name`, asked on `admin`.
fn client_ids(admin: &mut RespConn, name: &str) -> HashSet<String> {
    let needle = format!(" name={name} ");
    admin
        .command(&["CLIENT", "LIST"])
        .expect("CLIENT LIST")
        .text()
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect()
}

#[actix::test]
async fn an_acl_password_changed_under_load_with_the_new_one_handed_in_fails_no_acquire() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (user, old_pw, new_pw, wrong) =
        ("rotator", "Gecko4Harbor7", "Puffin9Lantern2", "Yak1Mirage5");
    server
        .command(&[
            "ACL",
            "SETUSER",
            user,
            "on",
            &format!(">{old_pw}"),
            "~*",
            "&*",
            "+@all",
        ])
        .unwrap();
    let mut admin = server.admin().unwrap();
    let sup = supervisor();
    let cfg = config(&server, Some(user), old_pw, "acl-rotate");
    let pool = sup.pool_with(cfg.clone(), pool_config(4)).await.unwrap();
    warmed(&pool, 4).await;
    let old_ids = client_ids(&mut admin, "acl-rotate");
    assert_eq!(old_ids.len(), 4);

    let load = Load::start(&pool, 8, Pace::backoff(ms(10)), |w, mut conn| async move {
        conn.incr::<_, _, i64>(format!("counter:{w}"), 1)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    });
    assert!(
        load.reached(200, secs(30)).await,
        "the load never got going"
    );
    server
        .command(&["ACL", "SETUSER", user, "resetpass", &format!(">{new_pw}")])
        .unwrap();
    assert!(load.more_ok(100, secs(30)).await);
    // A wrong password meanwhile is refused and changes nothing.
    assert_clean(
        &auth_refused(
            sup.pool(config(&server, Some(user), wrong, "acl-rotate"))
                .await,
        ),
        &[old_pw, new_pw, wrong],
    );
    sup.pool(config(&server, Some(user), new_pw, "acl-rotate"))
        .await
        .expect("the new password authenticates");
    crate::went_on_without_errors(load).await;

    let gone = eventually(secs(10), || {
        let now = client_ids(&mut admin, "acl-rotate");
        std::future::ready(now.is_disjoint(&old_ids).then_some(()))
    })
    .await;
    assert!(
        gone.is_some(),
        "a client of the old password is still connected"
    );
    let s = pool.stats();
    assert_eq!(s.credential_rotations, 1);
    assert_eq!(client_ids(&mut admin, "acl-rotate").len(), s.live, "{s:?}");
    // The old password is refused now, by the server and so by the pool.
    assert_clean(&auth_refused(sup.pool(cfg).await), &[old_pw, new_pw, wrong]);
    assert_eq!(
        client_ids(&mut admin, "acl-rotate").len(),
        pool.stats().live
    );
}

#[actix::test]
async fn requirepass_wrong_first_then_changed_and_handed_in() {
    let (first, second, wrong) = ("Stoat3Comet8", "Newt7Fjord1", "Mole2Prism9");
    let Some(server) = RedisServer::start_with(RedisOptions {
        password: Some(first.into()),
        ..RedisOptions::default()
    }) else {
        return;
    };
    let sup = supervisor();
    // Wrong first: that pool gets nothing; the right password takes it over.
    let wrong_handle = sup
        .pool_with(config(&server, None, wrong, "requirepass"), pool_config(0))
        .await
        .unwrap();
    assert_clean(&auth_refused(wrong_handle.acquire().await), &[first, wrong]);
    let pool = sup
        .pool(config(&server, None, first, "requirepass"))
        .await
        .expect("verified");
    let held = pool.acquire().await.unwrap();
    assert_clean(&auth_refused(wrong_handle.acquire().await), &[first, wrong]);

    // `requirepass` changes; the checked-out client stays logged in, and is closed when
    // it comes back once the new password is handed in.
    let mut admin = server.admin().unwrap();
    admin
        .command(&["CONFIG", "SET", "requirepass", second])
        .unwrap();
    sup.pool(config(&server, None, second, "requirepass"))
        .await
        .expect("the new password authenticates");
    drop(held);
    let mut conn = pool.acquire().await.unwrap();
    let _: () = conn.set("k", 1).await.unwrap();
    drop(conn);
    let s = pool.stats();
    assert_eq!(s.credential_rotations, 2, "{s:?}");
    assert_eq!(client_ids(&mut admin, "requirepass").len(), s.live, "{s:?}");
}
