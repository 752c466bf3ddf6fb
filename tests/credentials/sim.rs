//! On the simulated backend: two configs that differ only in password share a
//! pool key, so a different password is verified with one connect before it is served;
//! if it authenticates the pool rotates to it, if not the caller gets the authentication
//! error and the pool is untouched. A credentials provider is asked at each connect.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::support_pool::*;
use poolwarden::backends::sim::{SimBackend, SimBehavior};
use poolwarden::messages::{Acquire, GetPool, Lookup};
use poolwarden::{
    BackendError, BackendErrorKind, ConnectionConfig, CredentialsFuture, CredentialsProvider,
    Error, Phase, PoolConfig, PoolStats, Secret,
};

const OLD: &str = "Walrus4Ember9";
const NEW: &str = "Heron8Cobalt2";
const WRONG: &str = "Marmot3Quill6";

fn with_password(name: &str, password: Option<&str>) -> ConnectionConfig {
    let mut c = ConnectionConfig::sim(name);
    c.user = Some("app".into());
    c.password = password.map(Secret::new);
    c
}

#[track_caller]
fn assert_auth_refused<T: std::fmt::Debug>(result: Result<T, Error>) -> Error {
    match result {
        Err(
            e @ Error::Backend {
                phase: Phase::Connect,
                ..
            },
        ) => {
            let Error::Backend { source, .. } = &e else {
                unreachable!()
            };
            assert_eq!(source.kind(), BackendErrorKind::Auth, "{e:?}");
            e
        }
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

/// The figures a refused caller must not move.
fn books(s: &PoolStats) -> (usize, usize, usize, u64, u64, u64, u64, u64) {
    (
        s.idle,
        s.in_use,
        s.live,
        s.created,
        s.closed,
        s.connect_errors,
        s.served,
        s.credential_rotations,
    )
}

/// A pool on a server that wants `OLD`, resolved with `OLD`, one connection idle.
async fn running_pool(name: &str, config: PoolConfig) -> Fixture {
    let f = start_with(
        with_password(name, Some(OLD)),
        config,
        SimBehavior::default(),
    )
    .await;
    f.server.set_password(Some(OLD));
    drop(f.pool.acquire().await.expect("the right password connects"));
    f
}

#[actix::test]
async fn a_wrong_password_for_a_running_pool_gets_the_auth_error_and_the_pool_is_untouched() {
    let f = running_pool("wrong-later", quiet_config()).await;
    let before = f.pool.stats();
    let open = f.server.open_connections();
    let wrong = with_password("wrong-later", Some(WRONG));
    let no_password = with_password("wrong-later", None);

    assert_auth_refused(f.sup.pool(wrong.clone()).await);
    assert_auth_refused(f.sup.pool(no_password.clone()).await);
    assert_auth_refused(f.sup.lookup(wrong.clone()).await);
    assert_auth_refused(f.sup.acquire(wrong.clone()).await);
    assert_auth_refused(
        f.sup
            .addr()
            .send(Acquire::new(no_password.clone()))
            .await
            .unwrap(),
    );
    assert_auth_refused(
        f.sup
            .addr()
            .send(GetPool::new(wrong.clone()))
            .await
            .unwrap(),
    );
    assert_auth_refused(f.sup.register("orders", wrong.clone(), None).await);
    assert!(
        matches!(f.sup.lookup("orders").await, Err(Error::UnknownPool { .. })),
        "a refused registration registers nothing"
    );
    settle().await;

    let after = f.pool.stats();
    assert_eq!(books(&after), books(&before), "{before:?}\n{after:?}");
    assert!(after.breaker == before.breaker);
    assert_eq!(f.server.open_connections(), open);
    // The pool still serves its own callers, with its own connection.
    drop(f.pool.acquire().await.unwrap());
    let same = f.sup.pool(f.connection.clone()).await.unwrap();
    assert_eq!(same.key(), f.pool.key());
    assert_eq!(
        f.pool.stats().created,
        before.created,
        "no connect for the pool's own password"
    );
    f.assert_quiescent();
}

#[actix::test]
async fn wrong_first_then_right_serves_the_right_caller_and_never_the_wrong_one() {
    tokio::time::pause();
    let sim = SimBackend::new(12);
    let sup = poolwarden::SupervisorHandle::start(
        sim.clone(),
        poolwarden::SupervisorConfig {
            pool_idle_timeout: None,
            default_pool: quiet_config(),
            ..poolwarden::SupervisorConfig::default()
        },
    )
    .unwrap();
    let server = sim.server(&with_password("first-wrong", None).primary_host());
    server.set_password(Some(OLD));

    let wrong = sup
        .pool(with_password("first-wrong", Some(WRONG)))
        .await
        .expect("a new pool is created with whatever it is given");
    assert_auth_refused(wrong.acquire().await);
    assert_eq!(server.open_connections(), 0);

    let right = sup
        .pool(with_password("first-wrong", Some(OLD)))
        .await
        .expect("the right password is verified and taken up");
    assert_eq!(right.key(), wrong.key());
    let mut conn = right.acquire().await.expect("the right caller is served");
    conn.query("SELECT 1").await.unwrap();
    drop(conn);
    let s = right.stats();
    assert_eq!(s.credential_rotations, 1, "{s:?}");

    // The handle resolved with the wrong password never authenticated: it gets nothing
    // opened with the right one, with an idle connection there or not.
    assert!(s.idle >= 1, "{s:?}");
    assert_auth_refused(wrong.acquire().await);
    assert_auth_refused(wrong.acquire_timeout(ms(100)).await);
    assert_eq!(right.stats().in_use, 0);
    // And presenting it again is verified again, and refused.
    assert_auth_refused(sup.pool(with_password("first-wrong", Some(WRONG))).await);
    drop(right.acquire().await.unwrap());
    assert_eq!(server.open_connections(), right.stats().live);
}

#[actix::test]
async fn a_password_rotated_under_load_fails_no_acquire_and_old_connections_close_as_they_return() {
    let config = PoolConfig {
        min_idle: 4,
        max_size: 4,
        ..quiet_config()
    };
    let f = running_pool("rotate", config).await;
    assert!(eventually(secs(1), || f.pool.stats().idle == 4).await);
    let old_ids: HashSet<u64> = {
        let held = f.hold(4).await;
        held.iter().map(|c| c.id()).collect()
    };
    assert_eq!(old_ids.len(), 4);

    let failures = Arc::new(AtomicU32::new(0));
    let ops = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (pool, failures, ops, stop) =
                (f.pool.clone(), failures.clone(), ops.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match pool.acquire().await {
                        Ok(mut conn) => {
                            conn.query("SELECT 1").await.unwrap();
                            tokio::time::sleep(ms(3)).await;
                            ops.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("acquire failed: {e:?}");
                            failures.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(ms(1)).await;
                        }
                    }
                }
            })
        })
        .collect();
    settle_for(ms(50)).await;

    // The server's password changes (open connections keep working), then the new one
    // is handed in.
    f.server.set_password(Some(NEW));
    settle_for(ms(20)).await;
    let rotated = f
        .sup
        .pool(with_password("rotate", Some(NEW)))
        .await
        .expect("the new password authenticates");
    assert_eq!(rotated.key(), f.pool.key());
    let at_rotation = ops.load(Ordering::Relaxed);
    settle_for(ms(100)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        ops.load(Ordering::Relaxed) > at_rotation + 50,
        "the load went on"
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no acquire failed");

    // Every connection of the old password was closed as it came back: the server holds
    // only new ones, exactly those the pool counts.
    settle().await;
    let s = f.pool.stats();
    assert_eq!(s.credential_rotations, 1);
    assert_eq!(f.server.open_connections(), s.live, "{s:?}");
    let held = f.hold(4).await;
    for c in &held {
        assert!(
            !old_ids.contains(&c.id()),
            "connection {} is an old one",
            c.id()
        );
    }
    drop(held);
    // The old password is now refused by the server, and so by the pool.
    assert_auth_refused(f.sup.pool(with_password("rotate", Some(OLD))).await);
    assert_eq!(f.pool.stats().credential_rotations, 1);
    f.assert_quiescent();
}

#[actix::test]
async fn a_rotation_closes_idle_connections_of_the_old_password_at_once() {
    let f = running_pool("idle-old", quiet_config()).await;
    let held = f.hold(3).await;
    let old: HashSet<u64> = held.iter().map(|c| c.id()).collect();
    drop(held);
    assert_eq!(f.pool.stats().idle, 3);

    f.server.set_password(Some(NEW));
    f.sup
        .pool(with_password("idle-old", Some(NEW)))
        .await
        .unwrap();
    let s = f.pool.stats();
    // The three idle ones closed; the verifying connection kept.
    assert_eq!((s.idle, s.live), (1, 1), "{s:?}");
    assert_eq!(f.server.open_connections(), 1);
    let conn = f.pool.acquire().await.unwrap();
    assert!(!old.contains(&conn.id()));
    assert_eq!(
        f.pool.stats().created,
        s.created,
        "the verifying connection is reused"
    );
    drop(conn);
    f.assert_quiescent();
}

/// A dedicated connection of the old password is told to close (its `closed()` resolves)
/// when the password rotates, as on a restart or an eviction: a holder waiting on it
/// (a LISTEN loop) lets it go and takes one of the new password.
#[actix::test]
async fn a_rotation_tells_dedicated_connections_of_the_old_password_to_close() {
    let f = running_pool("dedicated", quiet_config()).await;
    let conn = f.pool.dedicated().await.unwrap();
    let closed = tokio::spawn(conn.closed());
    settle().await;
    assert!(!closed.is_finished() && !conn.is_closing());
    f.server.set_password(Some(NEW));
    f.sup
        .pool(with_password("dedicated", Some(NEW)))
        .await
        .unwrap();
    assert!(conn.is_closing());
    tokio::time::timeout(ms(1), closed)
        .await
        .expect("closed() resolves at the rotation")
        .unwrap();
    drop(conn);
    let again = f.pool.dedicated().await.expect("one of the new password");
    assert!(!again.is_closing());
}

#[actix::test]
async fn two_callers_with_the_same_new_password_rotate_once() {
    let f = running_pool("twice", quiet_config()).await;
    f.server.set_password(Some(NEW));
    let new = with_password("twice", Some(NEW));
    let (a, b) = tokio::join!(f.sup.pool(new.clone()), f.sup.pool(new.clone()));
    a.unwrap();
    b.unwrap();
    assert_eq!(f.pool.stats().credential_rotations, 1);
    // Once it is the pool's, presenting it costs no connect.
    let attempts = f.server.connect_attempts();
    f.sup.pool(new).await.unwrap();
    assert_eq!(f.server.connect_attempts(), attempts);
    settle().await;
    f.assert_quiescent();
}

#[actix::test]
async fn a_registered_name_follows_the_rotation() {
    let f = running_pool("named", quiet_config()).await;
    f.sup
        .register("named", f.connection.clone(), None)
        .await
        .unwrap();
    f.server.set_password(Some(NEW));
    f.sup.pool(with_password("named", Some(NEW))).await.unwrap();
    // The pool goes away (reaped); the name recreates it with the password that last
    // authenticated, not the one first registered.
    let reaped = f.sup.reap_idle(ms(0)).await.unwrap();
    assert_eq!(reaped, vec![f.pool.key()]);
    let again = f.sup.lookup("named").await.unwrap();
    assert!(!again.is_closed());
    drop(
        again
            .acquire()
            .await
            .expect("connects with the new password"),
    );
}

/// Hands out the token of the moment, counting how often it was asked.
struct Tokens {
    current: Mutex<String>,
    asked: AtomicU32,
}

impl CredentialsProvider for Tokens {
    fn password<'a>(&'a self, _config: &'a ConnectionConfig) -> CredentialsFuture<'a> {
        Box::pin(async move {
            self.asked.fetch_add(1, Ordering::Relaxed);
            let token = self.current.lock().unwrap().clone();
            if token.is_empty() {
                return Err(BackendError::new(
                    BackendErrorKind::Auth,
                    "no token could be issued",
                ));
            }
            Ok(Secret::new(token))
        })
    }
}

#[actix::test]
async fn a_provider_rotating_tokens_is_asked_at_each_connect() {
    let f = start("tokens-bootstrap", quiet_config(), SimBehavior::default()).await;
    let server = f.backend.server(&with_password("iam", None).primary_host());
    server.set_password(Some("token-1"));
    let tokens = Arc::new(Tokens {
        current: Mutex::new("token-1".into()),
        asked: AtomicU32::new(0),
    });
    let pool = f
        .sup
        .pool_with_credentials(
            with_password("iam", None),
            Some(quiet_config()),
            tokens.clone(),
        )
        .await
        .unwrap();
    let held = {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.acquire().await.expect("the token authenticates"));
        }
        held
    };
    assert_eq!(
        tokens.asked.load(Ordering::Relaxed),
        3,
        "asked at each connect"
    );
    assert_eq!(server.connects(), 3);

    // The token expires: the server wants the next one, the provider hands it out.
    server.set_password(Some("token-2"));
    *tokens.current.lock().unwrap() = "token-2".into();
    for c in held {
        c.discard();
    }
    let conn = pool.acquire().await.expect("a new connect asks again");
    assert_eq!(tokens.asked.load(Ordering::Relaxed), 4);
    drop(conn);
    // The same provider again is the pool's credential: no connect, no question.
    let same = f
        .sup
        .pool_with_credentials(with_password("iam", None), None, tokens.clone())
        .await
        .unwrap();
    assert_eq!(same.key(), pool.key());
    assert_eq!(tokens.asked.load(Ordering::Relaxed), 4);
    assert_eq!(pool.stats().credential_rotations, 0);

    // A provider that fails: its typed error is the acquire's, not retried (Auth).
    *tokens.current.lock().unwrap() = String::new();
    pool.acquire().await.unwrap().discard();
    let e = assert_auth_refused(pool.acquire_timeout(secs(1)).await);
    assert!(e.to_string().contains("connecting"), "{e}");
    let Error::Backend { source, .. } = &e else {
        unreachable!()
    };
    assert!(
        source.to_string().contains("no token could be issued"),
        "{source}"
    );

    // A config password for a pool with a provider is a different credential: verified.
    *tokens.current.lock().unwrap() = "token-2".into();
    assert_auth_refused(f.sup.pool(with_password("iam", Some("token-1"))).await);
    let fixed = f
        .sup
        .pool(with_password("iam", Some("token-2")))
        .await
        .expect("a static password that authenticates takes over");
    assert_eq!(fixed.stats().credential_rotations, 1);
    let asked = tokens.asked.load(Ordering::Relaxed);
    pool.acquire().await.unwrap().discard();
    drop(pool.acquire().await.unwrap());
    assert_eq!(
        tokens.asked.load(Ordering::Relaxed),
        asked,
        "the provider was replaced"
    );
}

#[actix::test]
async fn a_closure_is_a_provider_and_another_provider_is_verified() {
    let f = start("closure", quiet_config(), SimBehavior::default()).await;
    let server = f
        .backend
        .server(&with_password("closure-db", None).primary_host());
    server.set_password(Some(OLD));
    let good = Arc::new(|_: &ConnectionConfig| async { Ok(Secret::new(OLD)) });
    let bad = Arc::new(|_: &ConnectionConfig| async { Ok(Secret::new(WRONG)) });
    let pool = f
        .sup
        .pool_with_credentials(with_password("closure-db", None), None, good)
        .await
        .unwrap();
    drop(pool.acquire().await.unwrap());
    let before = pool.stats();
    assert_auth_refused(
        f.sup
            .addr()
            .send(GetPool::new(with_password("closure-db", None)).with_credentials(bad))
            .await
            .unwrap(),
    );
    assert_eq!(books(&pool.stats()), books(&before));
    drop(pool.acquire().await.unwrap());
}

/// Runs of 16 or more hex digits in `text`.
fn long_hex_runs(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            if run.len() >= 16 {
                runs.push(std::mem::take(&mut run));
            }
            run.clear();
        }
    }
    runs
}

#[actix::test]
async fn neither_passwords_nor_their_keyed_hashes_show_in_debug_display_or_errors() {
    let f = running_pool("shown", quiet_config()).await;
    f.server.set_password(Some(NEW));
    let wrong = f
        .sup
        .pool(with_password("shown", Some(WRONG)))
        .await
        .unwrap_err();
    let rotated = f.sup.pool(with_password("shown", Some(NEW))).await.unwrap();
    let conn = rotated.acquire().await.unwrap();
    let stats = f.sup.stats().await.unwrap();
    let texts = [
        format!("{rotated:?} {rotated:#?} {:?}", f.pool),
        format!("{conn:?}"),
        format!("{wrong} {wrong:?} {wrong:#?}"),
        format!("{:?}", std::error::Error::source(&wrong)),
        format!("{stats:?}"),
        serde_json::to_string(&stats).unwrap(),
        format!("{:?}", f.sup.lookup(f.pool.key()).await.unwrap()),
    ];
    let key = f.pool.key().to_hex();
    for text in &texts {
        for pw in [OLD, NEW, WRONG] {
            assert!(!text.contains(pw), "a password shows: {text}");
        }
        for run in long_hex_runs(text) {
            assert!(
                key.contains(&run),
                "a digest other than the key shows: {run} in {text}"
            );
        }
    }
    drop(conn);
    let l = Lookup::<SimBackend>::new(f.pool.key());
    assert!(f.sup.addr().send(l).await.unwrap().is_ok());
}
