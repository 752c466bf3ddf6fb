//! One supervisor over every kind of database: `AnyBackend` against a real PostgreSQL, a
//! real Redis and a real MariaDB at once (throwaway servers), a SQLite file and the
//! simulated backend — typed access to each connection, one `GetStats`, one
//! `HealthCheck`, errors that say what happened underneath, schemes this build does not
//! serve, and asking what exists without creating anything.

mod common;

use common::{secs, MariaServer, PgServer, RedisServer};
use mysql_async::prelude::Queryable;
use poolwarden::backends::any::{AnyBackend, AnyConnection};
use poolwarden::backends::sim::SimBackend;
use poolwarden::{
    BackendErrorKind, ConnectionConfig, Error, HealthStatus, Phase, PoolConfig, Secret,
    SupervisorConfig, SupervisorHandle,
};

fn pool_config() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size: 4,
        acquire_timeout: secs(10),
        connect_timeout: secs(3),
        ..PoolConfig::default()
    }
}

fn start() -> SupervisorHandle<AnyBackend> {
    SupervisorHandle::start(AnyBackend::default(), SupervisorConfig::default()).unwrap()
}

#[actix::test]
async fn one_supervisor_serves_postgres_redis_mariadb_sqlite_and_sim_at_once() {
    let (Some(pg), Some(redis), Some(maria)) = (
        PgServer::shared(),
        RedisServer::shared(),
        MariaServer::shared(),
    ) else {
        return; // skipped with a printed reason (fails under CI=true)
    };
    let sup = start();
    let app = PgServer::unique_app("any");
    let pg_pool = sup
        .pool_with(pg.config_for(&app), pool_config())
        .await
        .unwrap();
    let redis_pool = sup.pool_with(redis.config(), pool_config()).await.unwrap();
    let maria_pool = sup.pool_with(maria.config(), pool_config()).await.unwrap();
    let sim_pool = sup
        .pool_with(
            ConnectionConfig::parse("sim://primary/app").unwrap(),
            pool_config(),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("any.db");
    let sqlite_url = format!("sqlite://{}", file.display());
    let sqlite_pool = sup
        .pool_with(ConnectionConfig::parse(&sqlite_url).unwrap(), pool_config())
        .await
        .unwrap();

    for round in 0..3i64 {
        let mut conn = pg_pool.acquire().await.unwrap();
        assert_eq!(conn.kind(), "postgres");
        assert!(conn.as_redis().is_none() && conn.as_mysql().is_none());
        let row = conn
            .as_postgres()
            .unwrap()
            .query_one("SELECT $1::int8 + 1", &[&round])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), round + 1);
        drop(conn);

        let mut conn = redis_pool.acquire().await.unwrap();
        let key = format!("any-{round}");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(round)
            .query_async(conn.as_redis().unwrap())
            .await
            .unwrap();
        let back: i64 = redis::cmd("GET")
            .arg(&key)
            .query_async(conn.as_redis().unwrap())
            .await
            .unwrap();
        assert_eq!(back, round);
        drop(conn);

        let mut conn = maria_pool.acquire().await.unwrap();
        let AnyConnection::Mysql(my) = &mut *conn else {
            panic!("a mysql connection, got {conn:?}");
        };
        let n: Option<i64> = my.query_first(format!("SELECT {round} + 1")).await.unwrap();
        assert_eq!(n, Some(round + 1));
        drop(conn);

        let mut conn = sim_pool.acquire().await.unwrap();
        conn.as_sim().unwrap().query("SELECT 1").await.unwrap();
        drop(conn);

        let mut conn = sqlite_pool.acquire().await.unwrap();
        let db = conn.as_sqlite().unwrap();
        db.write(move |tx| {
            tx.execute_batch("CREATE TABLE IF NOT EXISTS t (n INTEGER)")?;
            tx.execute("INSERT INTO t VALUES (?1)", [round])
        })
        .await
        .unwrap();
        let rows = db.query("SELECT count(*) FROM t", vec![]).await.unwrap();
        assert_eq!(rows[0][0], rusqlite::types::Value::Integer(round + 1));
    }

    let stats = sup.stats().await.unwrap();
    assert_eq!(stats.pools, 5, "{stats:?}");
    assert_eq!(stats.connections_served, 15, "{stats:?}");
    assert!(stats.per_pool.iter().all(|p| p.served == 3), "{stats:?}");
    let health = sup.health().await.unwrap();
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    assert_eq!(health.healthy, 5, "{health:?}");
    let listed = sup.pools().await.unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed
        .iter()
        .all(|l| l.running && !l.target.contains(pg.password())));

    let report = sup.shutdown(secs(5)).await.unwrap();
    assert_eq!(report.pools_closed, 5, "{report:?}");
    assert_eq!(pg.wait_backend_connections(&app, 0, secs(10)).await, 0);
}

#[actix::test]
async fn a_wrong_password_says_so_in_the_error_and_gets_no_connection() {
    let Some(pg) = PgServer::shared() else {
        return;
    };
    let sup = start();
    let app = PgServer::unique_app("any-auth");
    let mut cfg = pg.config_for(&app);
    cfg.password = Some(Secret::new("not-the-password"));
    let pool = sup.pool_with(cfg, pool_config()).await.unwrap();
    let err = pool.acquire().await.unwrap_err();
    let Error::Backend { phase, source, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*phase, Phase::Connect);
    assert_eq!(source.kind(), BackendErrorKind::Auth);
    let text = err.to_string();
    assert!(
        text.contains("connecting failed") && text.contains("password authentication failed"),
        "Display names the cause: {text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "source() keeps the chain"
    );
    assert_eq!(pg.backend_connections(&app).await, 0);
}

#[actix::test]
async fn schemes_this_build_does_not_serve_are_refused_naming_what_is_missing() {
    let sup = start();
    let cfg = ConnectionConfig::new("oracle", "db1", 1521);
    let pool = sup.pool_with(cfg, pool_config()).await.unwrap();
    let err = pool.acquire().await.unwrap_err();
    let source = match &err {
        Error::Backend { source, .. } => source,
        other => panic!("{other:?}"),
    };
    assert_eq!(source.kind(), BackendErrorKind::Config);
    assert!(
        err.to_string()
            .contains("no backend opens `oracle` connections"),
        "{err}"
    );
    assert!(AnyBackend::schemes().contains(&"postgres"));
}

#[actix::test]
async fn sim_pools_share_the_world_given_and_faults_reach_them() {
    let sim = SimBackend::new(3);
    let sup = SupervisorHandle::start(
        AnyBackend::default().with_sim(sim.clone()),
        SupervisorConfig::default(),
    )
    .unwrap();
    let cfg = ConnectionConfig::parse("sim://db1/app").unwrap();
    let pool = sup.pool_with(cfg.clone(), pool_config()).await.unwrap();
    drop(pool.acquire().await.unwrap());
    assert_eq!(sim.server(&cfg.primary_host()).open_connections(), 1);
}

#[actix::test]
async fn contains_and_listing_create_nothing() {
    let sup = start();
    let cfg = ConnectionConfig::parse("sim://db1/orders").unwrap();
    assert!(!sup.contains("orders").await.unwrap());
    assert!(!sup.contains(cfg.clone()).await.unwrap());
    assert!(sup.pools().await.unwrap().is_empty());
    assert_eq!(sup.stats().await.unwrap().pools, 0, "nothing was created");

    let pool = sup.register("orders", cfg.clone(), None).await.unwrap();
    assert!(sup.contains("orders").await.unwrap());
    assert!(sup.contains(pool.key()).await.unwrap());
    assert!(sup.contains(cfg).await.unwrap());
    assert!(!sup.contains("invoices").await.unwrap());
    let listed = sup.pools().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].names, ["orders"]);
    assert_eq!(listed[0].key, pool.key());
}
