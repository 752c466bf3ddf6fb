//! Smoke tests of the throwaway-server harness in `tests/common`: every server starts on
//! a free port, answers, counts only the connections asked about, restarts on the same
//! port, and is cleaned up even when the test process dies.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{wait_for, MariaServer, PgServer, RedisServer};

const STANDARD_PORTS: [u16; 3] = [5432, 6379, 3306];

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_starts_answers_counts_and_restarts() {
    let Some(pg) = PgServer::start() else { return };
    assert!(!STANDARD_PORTS.contains(&pg.port()));
    let admin = pg.superuser_client().await;
    let one: i32 = admin.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);

    // A client with its own application_name is counted; the admin connection is not.
    let app = PgServer::unique_app("smoke");
    assert_eq!(pg.backend_connections(&app).await, 0);
    let (client, conn) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(pg.port())
        .user(common::pg_server::PG_USER)
        .password(pg.password())
        .dbname("postgres")
        .application_name(&app)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    assert_eq!(pg.backend_connections(&app).await, 1);

    // Password authentication is on: a wrong password is refused.
    let err = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(pg.port())
        .user(common::pg_server::PG_USER)
        .password("wrong")
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .err()
        .expect("a wrong password is refused");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err}"
    );

    // Restart on the same port: the old connection dies, a new one works.
    pg.restart();
    let _ = task.await;
    assert!(client.is_closed());
    let admin = pg.superuser_client().await;
    let two: i32 = admin.query_one("SELECT 2", &[]).await.unwrap().get(0);
    assert_eq!(two, 2);
    assert_eq!(pg.backend_connections(&app).await, 0);

    let dir = pg.dir().to_path_buf();
    drop(pg);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

#[test]
fn redis_starts_answers_counts_and_restarts() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    assert!(!STANDARD_PORTS.contains(&redis.port()));
    assert_eq!(redis.command(&["PING"]).unwrap().text(), "PONG");
    assert_eq!(
        redis.client_count(),
        0,
        "the admin connection is not counted"
    );
    let mut named = redis.admin().unwrap();
    named.command(&["CLIENT", "SETNAME", "smoke"]).unwrap();
    assert_eq!(redis.client_count(), 1);
    assert_eq!(redis.client_count_named("smoke"), 1);
    assert_eq!(redis.client_count_named("other"), 0);

    redis.restart();
    assert!(named.command(&["PING"]).is_err(), "the old connection died");
    assert_eq!(redis.client_count(), 0);

    let dir = redis.dir().to_path_buf();
    drop(redis);
    assert!(!dir.exists());
}

#[test]
fn redis_with_a_password_refuses_anonymous_clients() {
    let Some(redis) = RedisServer::start_with(common::RedisOptions {
        password: Some("s3cret".into()),
        ..Default::default()
    }) else {
        return;
    };
    let mut anon = common::redis_server::RespConn::connect(redis.port()).unwrap();
    let err = anon.command(&["PING"]).unwrap_err();
    assert!(err.starts_with("NOAUTH"), "{err}");
    assert_eq!(redis.command(&["PING"]).unwrap().text(), "PONG");
    assert_eq!(
        redis.url(),
        format!("redis://:s3cret@127.0.0.1:{}", redis.port())
    );
}

#[test]
fn mariadb_starts_answers_counts_and_checks_passwords() {
    let Some(maria) = MariaServer::start() else {
        return;
    };
    assert!(!STANDARD_PORTS.contains(&maria.port()));
    assert_eq!(maria.sql("SELECT 1").unwrap().trim(), "1");
    let user = common::MariaServer::unique_user("smoke");
    maria.create_user(&user, "pw1");
    assert_eq!(maria.processlist_count(&user), 0);

    let client = |password: &str| {
        Command::new("mariadb")
            .args(["--no-defaults", "-h", "127.0.0.1", "-P"])
            .arg(maria.port().to_string())
            .arg(format!("-u{user}"))
            .arg(format!("-p{password}"))
            .args(["-N", "-B", "-e", "SELECT CURRENT_USER()"])
            .output()
            .unwrap()
    };
    let ok = client("pw1");
    assert!(ok.status.success(), "{ok:?}");
    let bad = client("wrong");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Access denied"));

    // A held connection shows up in the process list of its user only.
    let mut held = Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-P"])
        .arg(maria.port().to_string())
        .arg(format!("-u{user}"))
        .arg("-ppw1")
        .args(["-N", "-B", "-e", "SELECT SLEEP(30)"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let seen = wait_for(Duration::from_secs(10), || {
        (maria.processlist_count(&user) == 1).then_some(())
    });
    let _ = held.kill();
    let _ = held.wait();
    assert!(seen.is_some(), "the held connection was never counted");
    assert_eq!(maria.processlist_count(common::maria_server::MARIA_USER), 0);

    maria.restart();
    assert_eq!(maria.sql("SELECT 2").unwrap().trim(), "2");
}

/// Runs in a child process (see below): start servers, print where they are, abort.
#[test]
fn reaper_child() {
    if std::env::var_os("POOLWARDEN_REAPER_CHILD").is_none() {
        return;
    }
    let redis = RedisServer::start().expect("redis");
    println!("REDIS {} {}", redis.port(), redis.dir().display());
    if let Some(pg) = PgServer::start() {
        println!("PG {} {}", pg.port(), pg.dir().display());
        std::mem::forget(pg);
    }
    std::mem::forget(redis);
    println!("END");
    std::process::abort();
}

#[test]
fn servers_die_with_the_test_process() {
    if find_redis().is_none() {
        eprintln!("SKIP: redis-server is not installed");
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "reaper_child", "--nocapture", "--test-threads=1"])
        .env("POOLWARDEN_REAPER_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut servers = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let mut parts = line.split_whitespace();
        match parts.next() {
            Some("REDIS") | Some("PG") => {
                let port: u16 = parts.next().unwrap().parse().unwrap();
                let dir = std::path::PathBuf::from(parts.next().unwrap());
                servers.push((port, dir));
            }
            Some("END") => break,
            _ => {}
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child aborted");
    assert!(!servers.is_empty());
    for (port, dir) in servers {
        let gone = wait_for(Duration::from_secs(15), || {
            (TcpStream::connect(("127.0.0.1", port)).is_err() && !dir.exists()).then_some(())
        });
        assert!(
            gone.is_some(),
            "server on port {port} ({}) outlived its test process",
            dir.display()
        );
    }
}

fn find_redis() -> Option<std::path::PathBuf> {
    common::find_binary(&["redis-server"], &[])
}
