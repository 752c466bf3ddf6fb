//! TLS for Redis (`rediss://`) and MySQL / MariaDB against throwaway servers, with a test
//! CA made here: verified connections through a pool; a certificate for another name, an
//! untrusted CA and clear text against a server that requires TLS fail at once with a
//! `Config` error that leaves the breaker closed. (PostgreSQL's TLS tests are in
//! tests/postgres/tls.rs.)

mod common;

use std::time::Duration;

use common::tls::TlsFiles;
use common::{secs, MariaOptions, MariaServer, RedisOptions, RedisServer, TestCa};
use mysql_async::prelude::Queryable;
use poolwarden::backends::mysql::MysqlBackend;
use poolwarden::backends::redis::RedisBackend;
use poolwarden::{
    Backend, BackendError, BackendErrorKind, BreakerConfig, BreakerState, ConnectionConfig, Error,
    PoolConfig, PoolHandle, SupervisorConfig, SupervisorHandle,
};
use tokio::time::Instant;

/// A breaker that opens after one counted failure, so a failure that wrongly counts
/// against the endpoint shows at once.
fn pool_config() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size: 2,
        acquire_timeout: secs(10),
        connect_timeout: secs(5),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        breaker: BreakerConfig {
            failure_threshold: 1,
            ..BreakerConfig::default()
        },
        ..PoolConfig::default()
    }
}

async fn start_pool<B: Backend + Default>(
    cfg: ConnectionConfig,
) -> (SupervisorHandle<B>, PoolHandle<B>) {
    let sup = SupervisorHandle::start(B::default(), SupervisorConfig::default())
        .expect("valid supervisor config");
    let pool = sup
        .pool_with(cfg, pool_config())
        .await
        .expect("pool created");
    (sup, pool)
}

fn backend_error(err: &Error) -> &BackendError {
    err.backend_error()
        .unwrap_or_else(|| panic!("expected a backend error, got {err:?}"))
}

/// Acquiring from `pool` fails at once (no retries until the timeout) with a `Config`
/// error whose message contains `says`, twice, and the breaker stays closed.
async fn assert_refused<B: Backend>(pool: &PoolHandle<B>, says: &str, secret: Option<&str>) {
    assert_refused_as(pool, BackendErrorKind::Config, says, secret).await
}

async fn assert_refused_as<B: Backend>(
    pool: &PoolHandle<B>,
    kind: BackendErrorKind,
    says: &str,
    secret: Option<&str>,
) {
    for _ in 0..2 {
        let t = Instant::now();
        let err = pool.acquire().await.expect_err("must be refused");
        assert!(
            t.elapsed() < secs(3),
            "not retried until the timeout: {err}"
        );
        let source = backend_error(&err);
        assert_eq!(source.kind(), kind, "{source}");
        assert!(source.to_string().contains(says), "{source}");
        if let Some(secret) = secret {
            assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
        }
    }
    let stats = pool.stats();
    assert_eq!(stats.breaker, BreakerState::Closed, "{stats:?}");
    assert_eq!(stats.live, 0, "{stats:?}");
}

// ---------------------------------------------------------------------------------------
// Redis

fn tls_redis(files: &TlsFiles) -> Option<RedisServer> {
    RedisServer::start_with(RedisOptions {
        tls: Some(files.clone()),
        ..RedisOptions::default()
    })
}

fn rediss(server: &RedisServer, host: &str, query: &str) -> ConnectionConfig {
    ConnectionConfig::parse(&format!("rediss://{host}:{}/0?{query}", server.port()))
        .expect("valid URL")
}

async fn ping(pool: &PoolHandle<RedisBackend>) -> String {
    let mut conn = pool.acquire().await.expect("a TLS connection");
    redis::cmd("PING")
        .query_async::<String>(&mut *conn)
        .await
        .expect("PING")
}

#[actix::test]
async fn rediss_with_the_test_ca_works() {
    let ca = TestCa::new("poolwarden test CA");
    let files = ca.files("redis", &["127.0.0.1", "localhost"], "client");
    let Some(server) = tls_redis(&files) else {
        return;
    };
    let ca_file = files.ca_file.display();
    // verify-full (what rediss:// means), by IP address and by name.
    for host in ["127.0.0.1", "localhost"] {
        let (_sup, pool) =
            start_pool::<RedisBackend>(rediss(&server, host, &format!("sslrootcert={ca_file}")))
                .await;
        assert_eq!(ping(&pool).await, "PONG", "{host}");
    }
    // With a client certificate; and `require` without a CA (encrypted, not verified).
    let with_cert = format!(
        "sslrootcert={ca_file}&sslcert={}&sslkey={}",
        files.client_cert.display(),
        files.client_key.display()
    );
    let require = ConnectionConfig::parse(&format!(
        "redis://127.0.0.1:{}/0?sslmode=require",
        server.port()
    ))
    .unwrap();
    for cfg in [rediss(&server, "127.0.0.1", &with_cert), require] {
        let (_sup, pool) = start_pool::<RedisBackend>(cfg.clone()).await;
        assert_eq!(ping(&pool).await, "PONG", "{cfg}");
    }
    // The port speaks TLS only: clear text gets nowhere.
    let plain = ConnectionConfig::parse(&format!("redis://127.0.0.1:{}/0", server.port())).unwrap();
    let err = RedisBackend::default()
        .connect(&plain)
        .await
        .expect_err("clear text");
    assert_eq!(err.kind(), BackendErrorKind::Connect, "{err}");
}

#[actix::test]
async fn rediss_verify_full_refuses_a_wrong_name_and_an_untrusted_ca() {
    let ca = TestCa::new("poolwarden test CA");
    let other = TestCa::new("some other CA");
    let other_ca = other.ca_file();
    // A certificate for another name only.
    let files = ca.files("redis", &["db.example.com"], "client");
    let Some(server) = tls_redis(&files) else {
        return;
    };
    let cfg = rediss(
        &server,
        "127.0.0.1",
        &format!("sslrootcert={}", files.ca_file.display()),
    );
    let (_sup, pool) = start_pool::<RedisBackend>(cfg).await;
    assert_refused(&pool, "TLS: certificate not valid for host 127.0.0.1", None).await;

    // The right name, but a CA the client does not trust (also under `require`, which
    // verifies the chain when a CA file is given).
    for mode in ["verify-full", "require"] {
        let good = ca.files("good", &["127.0.0.1"], "client");
        let Some(server) = tls_redis(&good) else {
            return;
        };
        let mut cfg = rediss(
            &server,
            "127.0.0.1",
            &format!("sslrootcert={}", other_ca.display()),
        );
        cfg.password = Some(poolwarden::Secret::new("s3cret-pw"));
        cfg.tls.mode = if mode == "require" {
            poolwarden::SslMode::Require
        } else {
            poolwarden::SslMode::VerifyFull
        };
        let (_sup, pool) = start_pool::<RedisBackend>(cfg).await;
        assert_refused(&pool, "not signed by a trusted CA", Some("s3cret-pw")).await;
    }
}

// ---------------------------------------------------------------------------------------
// MySQL / MariaDB

/// A MariaDB server with TLS that refuses clear text over TCP.
fn secure_maria(files: &TlsFiles) -> Option<MariaServer> {
    MariaServer::start_with(MariaOptions {
        tls: Some(files.clone()),
        args: vec!["--require-secure-transport=ON".into()],
        ..MariaOptions::default()
    })
}

fn with_tls(
    server: &MariaServer,
    mode: poolwarden::SslMode,
    ca: Option<&std::path::Path>,
) -> ConnectionConfig {
    let mut cfg = server.config();
    cfg.tls.mode = mode;
    cfg.tls.ca_file = ca.map(Into::into);
    cfg
}

#[actix::test]
async fn mysql_over_tls_to_a_server_that_requires_it() {
    let ca = TestCa::new("poolwarden test CA");
    let files = ca.files("maria", &["127.0.0.1", "localhost"], "client");
    let Some(server) = secure_maria(&files) else {
        return;
    };
    for (mode, ca_file) in [
        (
            poolwarden::SslMode::VerifyFull,
            Some(files.ca_file.as_path()),
        ),
        (poolwarden::SslMode::Require, None),
    ] {
        let (_sup, pool) = start_pool::<MysqlBackend>(with_tls(&server, mode, ca_file)).await;
        let mut conn = pool.acquire().await.expect("a TLS connection");
        let cipher: Option<(String, String)> = conn
            .query_first("SHOW STATUS LIKE 'Ssl_cipher'")
            .await
            .expect("SHOW STATUS");
        let (_, cipher) = cipher.expect("an Ssl_cipher row");
        assert!(!cipher.is_empty(), "{mode:?}: the session is encrypted");
    }
}

#[actix::test]
async fn mysql_without_tls_is_refused_by_that_server() {
    let ca = TestCa::new("poolwarden test CA");
    let files = ca.files("maria", &["127.0.0.1"], "client");
    let Some(server) = secure_maria(&files) else {
        return;
    };
    // `prefer` (the default) is clear text with mysql_async. MariaDB answers a clear-text
    // login under require_secure_transport with "Access denied" (1045, as for a wrong
    // password: an Auth error); MySQL says ER_SECURE_TRANSPORT_REQUIRED (3159, Config).
    // Neither is retried or counted against the endpoint.
    for mode in [poolwarden::SslMode::Disable, poolwarden::SslMode::Prefer] {
        let (_sup, pool) = start_pool::<MysqlBackend>(with_tls(&server, mode, None)).await;
        assert_refused_as(
            &pool,
            BackendErrorKind::Auth,
            "Access denied",
            Some(server.password()),
        )
        .await;
    }
    // The same user over TLS is let in: it was the transport that was refused.
    let verify = with_tls(&server, poolwarden::SslMode::Require, None);
    let (_sup, pool) = start_pool::<MysqlBackend>(verify).await;
    drop(pool.acquire().await.expect("TLS is accepted"));
}

#[actix::test]
async fn mysql_with_a_wrong_ca_or_name_fails() {
    let ca = TestCa::new("poolwarden test CA");
    let other = TestCa::new("some other CA");
    let files = ca.files("maria", &["db.example.com"], "client");
    let Some(server) = secure_maria(&files) else {
        return;
    };
    let other_ca = other.ca_file();
    let verify = poolwarden::SslMode::VerifyFull;
    let (_sup, pool) = start_pool::<MysqlBackend>(with_tls(&server, verify, Some(&other_ca))).await;
    assert_refused(&pool, "not signed by a trusted CA", Some(server.password())).await;
    let (_sup, pool) =
        start_pool::<MysqlBackend>(with_tls(&server, verify, Some(&files.ca_file))).await;
    assert_refused(&pool, "TLS: certificate not valid for host 127.0.0.1", None).await;
    // `require` with a CA file is meant to verify the chain only, but mysql_async 0.36 with
    // rustls 0.23.2x+ checks the name as well (see the backend's documentation).
    let require = poolwarden::SslMode::Require;
    let (_sup, pool) =
        start_pool::<MysqlBackend>(with_tls(&server, require, Some(&files.ca_file))).await;
    assert_refused(&pool, "TLS: certificate not valid for host 127.0.0.1", None).await;
}

#[actix::test]
async fn mysql_client_keys_must_be_rsa() {
    // rcgen makes ECDSA keys; mysql_async reads RSA (PKCS#1) keys only: said before any
    // socket is opened.
    let ca = TestCa::new("poolwarden test CA");
    let files = ca.files("maria", &["127.0.0.1"], "client");
    let mut cfg = ConnectionConfig::new("mysql", "127.0.0.1", 9);
    cfg.tls.mode = poolwarden::SslMode::VerifyFull;
    cfg.tls.client_cert = Some(files.client_cert.clone());
    cfg.tls.client_key = Some(files.client_key.clone());
    let err = MysqlBackend::default()
        .connect(&cfg)
        .await
        .expect_err("EC key");
    assert_eq!(err.kind(), BackendErrorKind::Config, "{err}");
    assert!(err.to_string().contains("must be an RSA key"), "{err}");
}
