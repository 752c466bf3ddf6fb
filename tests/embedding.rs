//! `EmbeddedSupervisor`: a supervisor on a thread of its own, used from plain tokio code
//! with no actix System.

use std::time::Duration;

use poolwarden::backends::sim::SimBackend;
use poolwarden::{
    ConnectionConfig, EmbeddedSupervisor, Error, PoolConfig, PoolKey, SupervisorConfig,
};

/// Tests that start an embedded supervisor take turns: one counts the process's
/// `poolwarden` threads.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Threads of this process named `name` (Linux only; elsewhere `None`).
fn threads_named(name: &str) -> Option<usize> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_supervisor_serves_plain_tokio_tasks() {
    let _turn = ONE_AT_A_TIME.lock().await;
    assert!(
        actix::System::try_current().is_none(),
        "no actix System here"
    );
    let before = threads_named("poolwarden");

    let sim = SimBackend::new(41);
    let sup = EmbeddedSupervisor::spawn(
        sim.clone(),
        SupervisorConfig {
            default_pool: PoolConfig {
                max_size: 3,
                ..PoolConfig::default()
            },
            ..SupervisorConfig::default()
        },
    )
    .unwrap();
    if let Some(n) = before {
        assert_eq!(threads_named("poolwarden"), Some(n + 1), "its own thread");
    }
    assert!(actix::System::try_current().is_none(), "still none here");

    let (ca, cb) = (
        ConnectionConfig::sim("jobs"),
        ConnectionConfig::sim("events"),
    );
    let (sa, sb) = (
        sim.server(&ca.primary_host()),
        sim.server(&cb.primary_host()),
    );
    let a = sup.handle().pool(ca.clone()).await.unwrap();
    let b = sup.handle().pool(cb.clone()).await.unwrap();
    assert_eq!(a.key(), PoolKey::of(&ca));
    assert_ne!(a.key(), b.key());
    let again = sup.handle().lookup(ca.clone()).await.unwrap();
    assert!(again.actor() == a.actor());

    const TASKS: usize = 16;
    const ROUNDS: usize = 25;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (a, b) = (a.clone(), b.clone());
            tokio::spawn(async move {
                for r in 0..ROUNDS {
                    let pool = if (t + r) % 2 == 0 { &a } else { &b };
                    let mut conn = pool.acquire().await?;
                    assert_eq!(conn.key(), pool.key());
                    conn.query("SELECT 1").await.expect("query");
                    tokio::task::yield_now().await; // hold it across a yield
                    drop(conn);
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("every acquire succeeds");
    }

    let stats = sup.handle().stats().await.unwrap();
    assert_eq!(stats.pools, 2);
    assert_eq!(stats.connections_served, (TASKS * ROUNDS) as u64);
    assert_eq!((stats.in_use, stats.waiters), (0, 0));
    assert_eq!(stats.total, stats.idle);
    assert_eq!(stats.total, sa.open_connections() + sb.open_connections());
    for p in &stats.per_pool {
        assert_eq!(p.served, (TASKS * ROUNDS / 2) as u64, "{p:?}");
        assert!(p.live <= 3, "max_size holds under contention: {p:?}");
        assert_eq!(p.timeouts, 0);
    }

    let handle = sup.handle().clone();
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        sup.shutdown(Duration::from_secs(5)),
    )
    .await
    .expect("shutdown returns, so the thread was joined")
    .unwrap();
    assert_eq!(report.pools_closed, 2);
    assert_eq!(report.still_checked_out, 0);
    assert_eq!(report.connections_closed, stats.idle);
    assert_eq!((sa.open_connections(), sb.open_connections()), (0, 0));

    // The handles outlive the supervisor without working.
    assert!(matches!(a.acquire().await, Err(Error::ShuttingDown)));
    assert!(matches!(handle.stats().await, Err(Error::Mailbox(_))));

    // The thread is gone (it may take a moment to finish unwinding its stack).
    if let Some(n) = before {
        let mut left = threads_named("poolwarden");
        for _ in 0..200 {
            if left == Some(n) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            left = threads_named("poolwarden");
        }
        assert_eq!(left, Some(n), "the supervisor's thread exited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_refused_before_any_thread_starts() {
    let bad = SupervisorConfig {
        max_pools: 0,
        ..SupervisorConfig::default()
    };
    match EmbeddedSupervisor::spawn(SimBackend::default(), bad) {
        Err(e) => assert_eq!(e.field, "supervisor.max_pools"),
        Ok(_) => panic!("an invalid config was accepted"),
    }
}

/// Records the name of the thread each connect runs on.
#[derive(Clone, Default)]
struct ThreadRecorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl poolwarden::Backend for ThreadRecorder {
    type Connection = ();

    async fn connect(&self, _: &ConnectionConfig) -> Result<(), poolwarden::BackendError> {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        self.0.lock().unwrap().push(name);
        Ok(())
    }

    async fn probe(&self, _: &mut ()) -> Result<(), poolwarden::BackendError> {
        Ok(())
    }
}

/// Connections the pool opens by itself (warm-up to `min_idle`) are opened on the
/// application's runtime, where per-connection driver tasks (tokio-postgres') then run
/// beside the callers, not on the supervisor's thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pools_own_connects_run_on_the_application_runtime() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let recorder = ThreadRecorder::default();
    let sup = EmbeddedSupervisor::spawn(
        recorder.clone(),
        SupervisorConfig {
            default_pool: PoolConfig {
                min_idle: 3,
                max_size: 4,
                ..PoolConfig::default()
            },
            ..SupervisorConfig::default()
        },
    )
    .unwrap();
    let pool = sup
        .handle()
        .pool(ConnectionConfig::sim("home"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while pool.stats().idle < 3 {
        assert!(tokio::time::Instant::now() < deadline, "never warmed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let threads = recorder.0.lock().unwrap().clone();
    assert_eq!(threads.len(), 3, "{threads:?}");
    // The test runtime's workers (tokio names them `tokio-rt-worker`), not the
    // supervisor's `poolwarden` thread.
    assert!(
        threads.iter().all(|t| t.starts_with("tokio-")),
        "warm-up connects ran on {threads:?}"
    );
    sup.shutdown(Duration::from_secs(1)).await.unwrap();
}
