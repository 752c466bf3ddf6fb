//! TLS: verification against the right and a wrong CA, `require` and `prefer`, a server
//! without TLS, client certificates, and host-name checks.

use std::sync::OnceLock;

use crate::common::pg_server::PG_USER;
use crate::common::secs;
use crate::common::{PgOptions, PgServer, PgTls, TestCa};
use crate::{
    assert_server_count_matches, backend_error, backend_state, pool_config, start_pool, Pg,
};
use poolwarden::backends::postgres::{PostgresBackend, TransactionStatus};
use poolwarden::{Backend, BackendErrorKind, ConnectionConfig, PooledConnection};
use tokio::time::Instant;

/// One TLS server for the TLS tests: certificate for 127.0.0.1 and localhost from a CA
/// generated here; `hostssl … cert` for the role `certuser`.
struct TlsFixture {
    pg: PgServer,
    ca_file: std::path::PathBuf,
    other_ca_file: std::path::PathBuf,
    client_cert: std::path::PathBuf,
    client_key: std::path::PathBuf,
}

fn tls_fixture() -> Option<&'static TlsFixture> {
    static FIXTURE: OnceLock<Option<TlsFixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let ca = TestCa::new("poolwarden test CA");
            let server = ca.server_cert(&["127.0.0.1", "localhost"]);
            let client = ca.client_cert("certuser");
            let other = TestCa::new("some other CA");
            let pg = PgServer::start_with(PgOptions {
                tls: Some(PgTls {
                    cert_pem: server.cert_pem,
                    key_pem: server.key_pem,
                    client_ca_pem: Some(ca.cert_pem()),
                }),
                hba: Some(
                    "local all all scram-sha-256\n\
                     hostssl all certuser 127.0.0.1/32 cert\n\
                     host all all 127.0.0.1/32 scram-sha-256\n"
                        .into(),
                ),
                ..PgOptions::default()
            })?;
            // Keep the files in the server's directory: the reaper deletes them with it.
            let write = |name: &str, text: &str| {
                let path = pg.dir().join(name);
                std::fs::write(&path, text).expect("write PEM");
                path
            };
            Some(TlsFixture {
                ca_file: write("ca.pem", &ca.cert_pem()),
                other_ca_file: write("other-ca.pem", &other.cert_pem()),
                client_cert: write("client.crt", &client.cert_pem),
                client_key: write("client.key", &client.key_pem),
                pg,
            })
        })
        .as_ref()
}

fn tls_url(f: &TlsFixture, host: &str, app: &str, query: &str) -> ConnectionConfig {
    ConnectionConfig::parse(&format!(
        "postgres://{PG_USER}:{}@{host}:{}/postgres?application_name={app}&{query}",
        f.pg.password(),
        f.pg.port()
    ))
    .expect("valid URL")
}

async fn uses_ssl(conn: &PooledConnection<Pg>) -> bool {
    conn.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .await
    .expect("pg_stat_ssl")
    .get(0)
}

#[actix::test]
async fn tls_verify_full_with_the_right_ca_works() {
    let Some(f) = tls_fixture() else { return };
    for host in ["127.0.0.1", "localhost"] {
        let app = PgServer::unique_app("verify");
        let cfg = tls_url(
            f,
            host,
            &app,
            &format!("sslmode=verify-full&sslrootcert={}", f.ca_file.display()),
        );
        let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
        let conn = pool.acquire().await.expect("verified TLS connection");
        assert!(uses_ssl(&conn).await, "{host}: pg_stat_ssl shows TLS");
        // The transaction tracking works above the decryption.
        let pid = conn.backend_pid();
        let real: i32 = conn
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(pid, real);
        conn.batch_execute("BEGIN").await.unwrap();
        assert_eq!(conn.transaction_status(), TransactionStatus::InTransaction);
        drop(conn);
        let conn = pool.acquire().await.unwrap();
        assert_eq!(conn.backend_pid(), pid);
        assert_eq!(
            backend_state(&f.pg, pid).await,
            "idle",
            "{host}: rolled back"
        );
        drop(conn);
        assert_server_count_matches(&f.pg, &app, &pool).await;
    }
}

#[actix::test]
async fn tls_with_a_wrong_ca_is_rejected() {
    let Some(f) = tls_fixture() else { return };
    for mode in ["verify-full", "require"] {
        // With an explicit root certificate, require verifies the chain too (libpq).
        let app = PgServer::unique_app("wrongca");
        let cfg = tls_url(
            f,
            "127.0.0.1",
            &app,
            &format!("sslmode={mode}&sslrootcert={}", f.other_ca_file.display()),
        );
        let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
        let t = Instant::now();
        let err = pool.acquire().await.expect_err("untrusted certificate");
        assert!(
            t.elapsed() < secs(3),
            "{mode}: not retried until the timeout"
        );
        let source = backend_error(&err);
        assert_eq!(source.kind(), BackendErrorKind::Config, "{mode}: {source}");
        assert!(
            source.to_string().to_lowercase().contains("certificate"),
            "{mode}: {source}"
        );
        assert_eq!(pool.stats().connect_errors, 1, "{mode}: not retried");
        assert_server_count_matches(&f.pg, &app, &pool).await;
    }
}

#[actix::test]
async fn tls_require_and_prefer_encrypt_without_verifying() {
    let Some(f) = tls_fixture() else { return };
    for mode in ["require", "prefer"] {
        let app = PgServer::unique_app(mode);
        let cfg = tls_url(f, "127.0.0.1", &app, &format!("sslmode={mode}"));
        let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
        let conn = pool.acquire().await.expect("TLS without verification");
        assert!(uses_ssl(&conn).await, "{mode}");
        drop(conn);
        assert_server_count_matches(&f.pg, &app, &pool).await;
    }
    // disable: plaintext even though the server offers TLS.
    let app = PgServer::unique_app("disable");
    let cfg = tls_url(f, "127.0.0.1", &app, "sslmode=disable");
    let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
    let conn = pool.acquire().await.unwrap();
    assert!(!uses_ssl(&conn).await);
    drop(conn);
    assert_server_count_matches(&f.pg, &app, &pool).await;
}

#[actix::test]
async fn tls_against_a_server_without_tls() {
    let Some(pg) = PgServer::shared() else { return };
    // prefer falls back to plaintext …
    let app = PgServer::unique_app("fallback");
    let mut cfg = pg.config_for(&app);
    cfg.tls.mode = poolwarden::SslMode::Prefer;
    let (_sup, pool) = start_pool(cfg.clone(), pool_config(1)).await;
    let conn = pool.acquire().await.expect("plaintext fallback");
    assert!(!uses_ssl(&conn).await);
    drop(conn);
    assert_server_count_matches(pg, &app, &pool).await;
    // … require refuses, as a configuration error.
    cfg.tls.mode = poolwarden::SslMode::Require;
    let err = PostgresBackend::new()
        .connect(&cfg)
        .await
        .expect_err("no TLS");
    assert_eq!(err.kind(), BackendErrorKind::Config, "{err}");
    assert!(err.to_string().contains("does not support TLS"), "{err}");
}

#[actix::test]
async fn tls_client_certificate_authenticates() {
    let Some(f) = tls_fixture() else { return };
    f.pg.superuser_client()
        .await
        .batch_execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'certuser') \
             THEN CREATE ROLE certuser LOGIN; END IF; END $$",
        )
        .await
        .unwrap();
    let app = PgServer::unique_app("certauth");
    let url = |extra: &str| {
        ConnectionConfig::parse(&format!(
            "postgres://certuser@127.0.0.1:{}/postgres?application_name={app}\
             &sslmode=verify-full&sslrootcert={}{extra}",
            f.pg.port(),
            f.ca_file.display()
        ))
        .unwrap()
    };
    let cfg = url(&format!(
        "&sslcert={}&sslkey={}",
        f.client_cert.display(),
        f.client_key.display()
    ));
    let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
    let conn = pool.acquire().await.expect("certificate authentication");
    let user: String = conn
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "certuser");
    drop(conn);
    assert_server_count_matches(&f.pg, &app, &pool).await;

    // Without the certificate the server refuses the user: an authentication error.
    let err = PostgresBackend::new()
        .connect(&url(""))
        .await
        .expect_err("no client certificate");
    assert_eq!(err.kind(), BackendErrorKind::Auth, "{err}");
}

#[actix::test]
async fn tls_verify_full_checks_the_host_name() {
    // A server whose certificate names another host.
    let ca = TestCa::new("name check CA");
    let server = ca.server_cert(&["db.example.test"]);
    let Some(pg) = PgServer::start_with(PgOptions {
        tls: Some(PgTls {
            cert_pem: server.cert_pem,
            key_pem: server.key_pem,
            client_ca_pem: None,
        }),
        ..PgOptions::default()
    }) else {
        return;
    };
    let ca_file = ca.ca_file();
    let mut cfg = pg.config_for(&PgServer::unique_app("name"));
    cfg.tls.ca_file = Some(ca_file);
    cfg.tls.mode = poolwarden::SslMode::VerifyFull;
    let err = PostgresBackend::new()
        .connect(&cfg)
        .await
        .expect_err("wrong name");
    assert_eq!(err.kind(), BackendErrorKind::Config, "{err}");
    assert!(
        err.to_string()
            .contains("TLS: certificate not valid for host 127.0.0.1"),
        "{err}"
    );
    // The chain is fine: prefer with the root certificate (verify-ca) accepts it.
    cfg.tls.mode = poolwarden::SslMode::Prefer;
    let conn = PostgresBackend::new()
        .connect(&cfg)
        .await
        .expect("verify-ca accepts the chain");
    let ssl: bool = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
}
