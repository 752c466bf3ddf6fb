//! Unit tests of connection configs: URLs, defaults, redaction, TOML.

use super::*;

#[test]
fn parses_postgres_url_with_everything() {
    let c = ConnectionConfig::parse(
        "postgresql://u%40x:p%2Fw@h1:5433,[::1]:5434/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=app&statement_timeout=5s",
    )
    .unwrap();
    assert_eq!(c.backend, "postgres");
    assert_eq!(c.user.as_deref(), Some("u@x"));
    assert_eq!(c.password.as_ref().unwrap().expose(), "p/w");
    assert_eq!(
        c.hosts,
        vec![
            Host {
                host: "h1".into(),
                port: 5433
            },
            Host {
                host: "::1".into(),
                port: 5434
            }
        ]
    );
    assert_eq!(c.database.as_deref(), Some("db"));
    assert_eq!(c.tls.mode, SslMode::VerifyFull);
    assert_eq!(
        c.tls.ca_file.as_deref(),
        Some(std::path::Path::new("/ca.pem"))
    );
    assert_eq!(c.application_name.as_deref(), Some("app"));
    assert_eq!(c.options["statement_timeout"], "5s");
}

#[test]
fn default_ports_per_scheme() {
    assert_eq!(
        ConnectionConfig::parse("redis://cache").unwrap().hosts[0].port,
        6379
    );
    assert_eq!(
        ConnectionConfig::parse("mysql://root@db/x").unwrap().hosts[0].port,
        3306
    );
    assert_eq!(
        ConnectionConfig::parse("postgres://db").unwrap().hosts[0].port,
        5432
    );
    let r = ConnectionConfig::parse("rediss://cache:7000/2").unwrap();
    assert_eq!(
        (r.tls.mode, r.database.as_deref()),
        (SslMode::VerifyFull, Some("2"))
    );
}

#[test]
fn malformed_urls_name_the_field() {
    for bad in [
        "not a url",
        "ftp://x",
        "postgres://h:notaport/db",
        "postgres://h:0/db",
        "postgres://,h/db",
        "postgres://h/db?sslmode=sometimes",
        "postgres://u:%zz@h/db",
    ] {
        let e = ConnectionConfig::parse(bad).unwrap_err();
        assert!(e.field.starts_with("connection."), "{bad}: {e}");
    }
}

#[test]
fn password_is_redacted_everywhere() {
    let c = ConnectionConfig::parse("postgres://u:hunter2@h/db").unwrap();
    let shown = format!("{c} {c:?} {:#?}", c);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("***"));
    let json = serde_json::to_string(&c).unwrap();
    assert!(!json.contains("hunter2"), "{json}");
}

#[test]
fn deserializes_from_toml() {
    let c: ConnectionConfig = toml::from_str(
        r#"
        backend = "postgres"
        hosts = [{ host = "db", port = 5432 }]
        database = "app"
        password = "pw"
        tls = { mode = "require" }
        "#,
    )
    .unwrap();
    assert_eq!(c.tls.mode, SslMode::Require);
    assert_eq!(c.password.unwrap().expose(), "pw");
}

#[test]
fn client_cert_needs_key() {
    let mut c = ConnectionConfig::sim("a");
    c.tls.client_cert = Some("/c.pem".into());
    assert_eq!(c.validate().unwrap_err().field, "connection.tls.client_key");
}
