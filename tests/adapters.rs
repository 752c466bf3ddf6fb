//! The bb8 and mobc adapters, through the real pool: managers written for those ecosystems
//! work unchanged. Hand-written in-memory managers exercise every mapped call (connect,
//! validity checks, broken connections, errors, one manager per pool key), and real ones run
//! against a throwaway Redis server: bb8-redis's `RedisConnectionManager`, and a mobc
//! manager over redis-rs written the way a user would.
//!
//! Every test ends by checking that the "server" (the in-memory world, or Redis) holds
//! exactly the connections the pool says are open.

mod common;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, RedisOptions, RedisServer};
use common::{ms, secs};
use parking_lot::Mutex;
use poolwarden::backends::bb8::Bb8Backend;
use poolwarden::backends::mobc::MobcBackend;
use poolwarden::{
    Backend, BackendError, BackendErrorKind, ConnectionConfig, Error, Phase, PoolConfig,
    PoolHandle, Secret, SupervisorConfig, SupervisorHandle,
};
use redis::AsyncCommands;

fn pool_config() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size: 4,
        acquire_timeout: secs(5),
        connect_timeout: secs(1),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        maintenance_interval: ms(20),
        ..PoolConfig::default()
    }
}

async fn start<B: Backend>(backend: B, cfg: ConnectionConfig, pool: PoolConfig) -> PoolHandle<B> {
    let sup = SupervisorHandle::start(backend, SupervisorConfig::default()).unwrap();
    sup.pool_with(cfg, pool).await.unwrap()
}

// ---------------------------------------------------------------------------------------
// An in-memory "server" and its connections, shared by the hand-written managers
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct World {
    open: AtomicUsize,
    connects: AtomicUsize,
    next_id: AtomicU64,
    /// Connect attempts fail while set.
    refuse: AtomicBool,
    /// Connections the "server" will fail validity checks for.
    invalid: Mutex<HashSet<u64>>,
}

/// A connection of the in-memory world: counts itself open until dropped.
struct MemConn {
    id: u64,
    world: Arc<World>,
    /// Set by its user to say it broke (what `has_broken` / `validate` report).
    broken: bool,
    log: Vec<String>,
}

impl MemConn {
    fn open(world: &Arc<World>) -> MemConn {
        world.open.fetch_add(1, Ordering::SeqCst);
        MemConn {
            id: world.next_id.fetch_add(1, Ordering::SeqCst),
            world: world.clone(),
            broken: false,
            log: Vec::new(),
        }
    }

    fn is_invalid(&self) -> bool {
        self.world.invalid.lock().contains(&self.id)
    }
}

impl Drop for MemConn {
    fn drop(&mut self) {
        self.world.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The managers' error; its text echoes a URL with the password, as some drivers' do.
#[derive(Debug)]
struct MemError(String);

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MemError {}

/// What a manager remembers of the config it was built from.
struct Endpoint {
    world: Arc<World>,
    url: String,
}

impl Endpoint {
    fn from_config(world: &Arc<World>, cfg: &ConnectionConfig) -> Endpoint {
        let pw = cfg.password.as_ref().map(Secret::expose).unwrap_or("");
        Endpoint {
            world: world.clone(),
            url: format!("mem://app:{pw}@{}", cfg.primary_host()),
        }
    }

    fn connect(&self) -> Result<MemConn, MemError> {
        self.world.connects.fetch_add(1, Ordering::SeqCst);
        if self.world.refuse.load(Ordering::SeqCst) {
            return Err(MemError(format!("authentication refused by {}", self.url)));
        }
        Ok(MemConn::open(&self.world))
    }
}

/// A plain bb8 manager: nothing poolwarden-specific in it.
struct Bb8Mem(Endpoint);

impl bb8::ManageConnection for Bb8Mem {
    type Connection = MemConn;
    type Error = MemError;

    async fn connect(&self) -> Result<MemConn, MemError> {
        self.0.connect()
    }

    async fn is_valid(&self, conn: &mut MemConn) -> Result<(), MemError> {
        if conn.is_invalid() {
            return Err(MemError(format!("connection {} is stale", conn.id)));
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut MemConn) -> bool {
        conn.broken
    }
}

/// A plain mobc manager: nothing poolwarden-specific in it.
struct MobcMem(Endpoint);

#[mobc::async_trait]
impl mobc::Manager for MobcMem {
    type Connection = MemConn;
    type Error = MemError;

    async fn connect(&self) -> Result<MemConn, MemError> {
        self.0.connect()
    }

    async fn check(&self, conn: MemConn) -> Result<MemConn, MemError> {
        if conn.is_invalid() {
            return Err(MemError(format!("connection {} is stale", conn.id)));
        }
        Ok(conn)
    }

    fn validate(&self, conn: &mut MemConn) -> bool {
        !conn.broken
    }
}

async fn assert_world_matches<B: Backend>(world: &World, pools: &[&PoolHandle<B>]) {
    let settled = eventually(secs(5), || async {
        let live: usize = pools.iter().map(|p| p.stats().live).sum();
        (world.open.load(Ordering::SeqCst) == live).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "world has {} open, pools {:?}",
        world.open.load(Ordering::SeqCst),
        pools.iter().map(|p| p.stats()).collect::<Vec<_>>()
    );
}

/// The scenario both in-memory managers go through; `backend` is built from `world`.
async fn exercise<B>(world: Arc<World>, backend: B)
where
    B: Backend,
    B::Connection: std::ops::DerefMut<Target = MemConn>,
{
    let cfg = ConnectionConfig::new("mem", "db1", 1);
    let pool = start(
        backend,
        cfg,
        PoolConfig {
            checkout_bypass: Duration::ZERO, // check validity on every checkout
            ..pool_config()
        },
    )
    .await;

    // Acquire, use (the manager's connection, through Deref), release, reuse.
    let mut conn = pool.acquire().await.unwrap();
    let first = conn.id;
    conn.log.push("hello".into());
    drop(conn);
    let s = pool.stats();
    assert_eq!(
        (s.idle, s.live, s.served),
        (1, 1, 1),
        "returned at once: {s:?}"
    );
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        (conn.id, conn.log.as_slice()),
        (first, &["hello".to_string()][..])
    );

    // A connection its manager calls broken is closed on release, never reused.
    conn.broken = true;
    drop(conn);
    let s = pool.stats();
    assert_eq!((s.live, s.closed), (0, 1), "{s:?}");
    assert_eq!(world.open.load(Ordering::SeqCst), 0);
    let conn = pool.acquire().await.unwrap();
    let second = conn.id;
    assert_ne!(second, first);
    drop(conn);

    // A connection failing the manager's check on checkout is replaced.
    world.invalid.lock().insert(second);
    let conn = pool.acquire().await.unwrap();
    assert_ne!(conn.id, second, "the invalid connection was not handed out");
    drop(conn);
    let s = pool.stats();
    assert_eq!((s.created, s.closed, s.live), (3, 2, 1), "{s:?}");
    assert_world_matches(&world, &[&pool]).await;
}

#[actix::test]
async fn a_hand_written_bb8_manager_works_unchanged() {
    let world = Arc::new(World::default());
    let w = world.clone();
    let backend = Bb8Backend::new(move |cfg| Ok(Bb8Mem(Endpoint::from_config(&w, cfg))));
    exercise(world, backend).await;
}

#[actix::test]
async fn a_hand_written_mobc_manager_works_unchanged() {
    let world = Arc::new(World::default());
    let w = world.clone();
    let backend = MobcBackend::new(move |cfg| Ok(MobcMem(Endpoint::from_config(&w, cfg))));
    exercise(world, backend).await;
}

#[actix::test]
async fn one_manager_per_pool_key_and_errors_that_keep_the_password_out() {
    let world = Arc::new(World::default());
    let w = world.clone();
    let built = Arc::new(AtomicUsize::new(0));
    let b = built.clone();
    let backend = Bb8Backend::new(move |cfg: &ConnectionConfig| {
        if cfg.hosts[0].host == "nowhere" {
            return Err(BackendError::new(
                BackendErrorKind::Config,
                "this manager cannot reach `nowhere`",
            ));
        }
        b.fetch_add(1, Ordering::SeqCst);
        Ok(Bb8Mem(Endpoint::from_config(&w, cfg)))
    })
    .classify_errors(|e: &MemError| {
        e.0.contains("authentication")
            .then_some(BackendErrorKind::Auth)
    });
    let sup = SupervisorHandle::start(backend, SupervisorConfig::default()).unwrap();

    let mut a_cfg = ConnectionConfig::new("mem", "a", 1);
    a_cfg.password = Some(Secret::new("hunter2"));
    let a = sup.pool_with(a_cfg.clone(), pool_config()).await.unwrap();
    let b = sup
        .pool_with(ConnectionConfig::new("mem", "b", 1), pool_config())
        .await
        .unwrap();
    let (c1, c2, c3) = (
        a.acquire().await.unwrap(),
        a.acquire().await.unwrap(),
        b.acquire().await.unwrap(),
    );
    assert_eq!(built.load(Ordering::SeqCst), 2, "one manager per key");
    drop((c1, c2, c3));

    // The manager's connect error: kind from the classifier, the manager's error as the
    // source, and its text without the password.
    world.refuse.store(true, Ordering::SeqCst);
    let mut bad = a_cfg.clone();
    bad.database = Some("other".into()); // another pool, same manager factory
    let pool = sup.pool_with(bad, pool_config()).await.unwrap();
    let err = pool.acquire().await.unwrap_err();
    let Error::Backend {
        phase: Phase::Connect,
        source,
        ..
    } = &err
    else {
        panic!("expected an auth error, got {err:?}");
    };
    assert_eq!(source.kind(), BackendErrorKind::Auth);
    let manager_error = std::error::Error::source(source)
        .and_then(|e| e.downcast_ref::<MemError>())
        .expect("the manager's error is the source");
    assert!(
        manager_error.0.contains("hunter2"),
        "the source is untouched"
    );
    let shown = format!("{err} {err:?} {source} {source:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("mem://app:***@a:1"), "{shown}");
    assert_eq!(
        pool.stats().connect_errors,
        1,
        "auth errors are not retried"
    );

    // A factory error fails the connect as it is.
    let pool = sup
        .pool_with(ConnectionConfig::new("mem", "nowhere", 1), pool_config())
        .await
        .unwrap();
    match pool.acquire().await.unwrap_err() {
        Error::Backend { source, .. } => assert_eq!(source.kind(), BackendErrorKind::Config),
        other => panic!("expected a config error, got {other:?}"),
    }
    world.refuse.store(false, Ordering::SeqCst);
    assert_world_matches(&world, &[&a, &b]).await;
}

// ---------------------------------------------------------------------------------------
// Real managers against a real Redis server
// ---------------------------------------------------------------------------------------

/// `redis://[:password@]host:port/db` from a pool's config, for managers that take URLs.
fn redis_url(cfg: &ConnectionConfig) -> String {
    let auth = cfg
        .password
        .as_ref()
        .map(|p| format!(":{}@", p.expose()))
        .unwrap_or_default();
    format!(
        "redis://{auth}{}/{}",
        cfg.primary_host(),
        cfg.database.as_deref().unwrap_or("0")
    )
}

async fn assert_redis_matches<B: Backend>(server: &RedisServer, pool: &PoolHandle<B>) {
    let settled = eventually(secs(5), || async {
        (server.client_count() == pool.stats().live).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "redis has {} clients, pool {:?}",
        server.client_count(),
        pool.stats()
    );
}

#[actix::test]
async fn bb8_redis_connection_manager_runs_unchanged() {
    let Some(server) = RedisServer::start_with(RedisOptions {
        password: Some("open-sesame".into()),
        ..RedisOptions::default()
    }) else {
        return;
    };
    let backend = Bb8Backend::new(|cfg| {
        bb8_redis::RedisConnectionManager::new(redis_url(cfg)).map_err(|e| {
            BackendError::new(BackendErrorKind::Config, "not a redis config").with_source(e)
        })
    })
    .classify_errors(|e: &redis::RedisError| {
        (e.kind() == redis::ErrorKind::AuthenticationFailed).then_some(BackendErrorKind::Auth)
    });
    let sup = SupervisorHandle::start(backend, SupervisorConfig::default()).unwrap();
    let pool = sup.pool_with(server.config(), pool_config()).await.unwrap();

    let mut conn = pool.acquire().await.unwrap();
    // `conn` derefs to bb8-redis's connection, a redis-rs MultiplexedConnection.
    let () = conn.set("adapter", "bb8").await.unwrap();
    let got: String = conn.get("adapter").await.unwrap();
    assert_eq!(got, "bb8");
    let other = pool.acquire().await.unwrap();
    drop((conn, other));
    let s = pool.stats();
    assert_eq!((s.live, s.idle, s.served), (2, 2, 2), "{s:?}");
    assert_redis_matches(&server, &pool).await;

    // A wrong password, classified as such: a clear, unretried auth error.
    let mut wrong = server.config();
    wrong.password = Some(Secret::new("close-sesame"));
    wrong.database = Some("1".into());
    let bad = sup.pool_with(wrong, pool_config()).await.unwrap();
    let err = bad.acquire().await.unwrap_err();
    match &err {
        Error::Backend {
            phase: Phase::Connect,
            source,
            ..
        } => assert_eq!(source.kind(), BackendErrorKind::Auth, "{source}"),
        other => panic!("expected an auth error, got {other:?}"),
    }
    assert!(!format!("{err} {err:?}").contains("close-sesame"));
    assert_redis_matches(&server, &pool).await;
}

/// How often PING ran on `server` (`INFO commandstats`).
fn ping_calls(server: &RedisServer) -> u64 {
    let info = server.command(&["INFO", "commandstats"]).unwrap().text();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// A mobc manager over redis-rs, written the way a user would (as in mobc-redis).
struct RedisMobc(redis::Client);

#[mobc::async_trait]
impl mobc::Manager for RedisMobc {
    type Connection = redis::aio::MultiplexedConnection;
    type Error = redis::RedisError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        self.0.get_multiplexed_async_connection().await
    }

    async fn check(&self, mut conn: Self::Connection) -> Result<Self::Connection, Self::Error> {
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(conn)
    }
}

#[actix::test]
async fn a_mobc_manager_over_redis_runs_unchanged() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = MobcBackend::new(|cfg| {
        redis::Client::open(redis_url(cfg))
            .map(RedisMobc)
            .map_err(|e| BackendError::new(BackendErrorKind::Config, "bad url").with_source(e))
    });
    let pool = start(
        backend,
        server.config(),
        PoolConfig {
            checkout_bypass: Duration::ZERO, // every checkout runs the manager's check
            ..pool_config()
        },
    )
    .await;

    let pings_before = ping_calls(&server);
    for i in 0..3 {
        let mut conn = pool.acquire().await.unwrap();
        let n: i64 = conn.incr("adapter:mobc", 1).await.unwrap();
        assert_eq!(n, i + 1);
    }
    let s = pool.stats();
    assert_eq!(
        (s.created, s.live, s.served),
        (1, 1, 3),
        "one connection, reused: {s:?}"
    );
    assert_eq!(
        ping_calls(&server) - pings_before,
        2,
        "the manager's check ran on the two checkouts of an idle connection"
    );

    // The server kills the connection: the check on checkout fails and it is replaced.
    let id: i64 = {
        let mut conn = pool.acquire().await.unwrap();
        redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut **conn)
            .await
            .unwrap()
    };
    server
        .command(&["CLIENT", "KILL", "ID", &id.to_string()])
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let fresh: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut **conn)
        .await
        .unwrap();
    assert_ne!(fresh, id);
    drop(conn);
    assert_eq!(pool.stats().closed, 1);
    assert_redis_matches(&server, &pool).await;
}
