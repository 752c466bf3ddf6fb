//! Metrics end to end: a Prometheus recorder installed in this test binary, pools on the
//! simulated backend doing what pools do (acquires, a timeout, a connection closed
//! broken, a soft eviction, a breaker opening), scraped through
//! `poolwarden::prometheus::handler` with `actix_web::test` and parsed as Prometheus text:
//! the names, the pool-name label, and the values moving with the pool. No label or
//! value carries the password.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{test as web, App};
use poolwarden::backends::sim::SimBackend;
use poolwarden::prometheus::{PrometheusBuilder, PrometheusHandle};
use poolwarden::{
    BreakerConfig, BreakerState, ConnectionConfig, Error, PoolConfig, SupervisorConfig,
    SupervisorHandle,
};
use prometheus_parse::{Sample, Scrape, Value};

const PW: &str = "Walrus4Tangerine9";

/// The recorder of this binary, installed once (globally: pools register from the
/// supervisor's thread, where a thread-local recorder would not be seen).
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_enable_unit_suffix(true)
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("the only recorder of this binary");
            handle
        })
        .clone()
}

/// `GET /metrics` through the handler, as text and parsed.
async fn scrape(handle: &PrometheusHandle) -> (String, Scrape) {
    let app =
        web::init_service(App::new().service(poolwarden::prometheus::handler(handle.clone())))
            .await;
    let resp = web::call_service(&app, web::TestRequest::get().uri("/metrics").to_request()).await;
    assert!(resp.status().is_success());
    let ctype = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let body = web::read_body(resp).await;
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text");
    (text, parsed)
}

const POOL: &str = "db_client_connection_pool_name";

/// The value of `metric` for `pool`, with the extra labels given (0 when absent).
fn value(s: &Scrape, metric: &str, pool: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x: &&Sample| x.metric == metric && x.labels.get(POOL) == Some(pool))
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(_) | Value::Summary(_) => f64::NAN,
        })
        .sum()
}

fn config() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size: 2,
        max_overflow: 0,
        acquire_timeout: Duration::from_secs(2),
        maintenance_interval: Duration::from_millis(20),
        probe_interval: None,
        test_on_checkout: false,
        breaker: BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_secs(30),
            max_open_for: Duration::from_secs(30),
            ..BreakerConfig::default()
        },
        ..PoolConfig::default()
    }
}

/// Long enough for a few maintenance ticks (gauges and histograms are set there).
async fn ticks() {
    tokio::time::sleep(Duration::from_millis(120)).await;
}

/// Every checkout counts once in the wait figures (the stats' percentiles and the
/// recorder's histogram), the usual one that waited for nothing included: the pool does
/// not record those one by one, its wait window counts them from the served count.
#[actix::test]
async fn every_checkout_counts_in_the_wait_figures() {
    let handle = recorder();
    let sup = SupervisorHandle::start(
        SimBackend::new(4),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .unwrap();
    let url = ConnectionConfig::parse(&format!("sim://app:{PW}@db2/waits")).unwrap();
    let pool = sup.register("waits", url, Some(config())).await.unwrap();
    // The first checkout waits for a connect; the next 50 take the idle connection.
    for _ in 0..51 {
        drop(pool.acquire().await.unwrap());
    }
    ticks().await;
    let st = pool.stats();
    assert_eq!((st.served, st.wait_time.count), (51, 51), "{st:?}");
    assert_eq!(st.wait_time.p50, Duration::ZERO, "{st:?}");
    assert!(st.wait_time.max > Duration::ZERO, "the connect: {st:?}");
    let count = |s: &Scrape| {
        value(
            s,
            "db_client_connection_wait_time_seconds_count",
            "waits",
            &[],
        )
    };
    let (_, s) = scrape(&handle).await;
    assert_eq!(count(&s), 51.0);
    // Handed over once, never twice: ten more are ten more.
    for _ in 0..10 {
        drop(pool.acquire().await.unwrap());
    }
    ticks().await;
    let (_, s) = scrape(&handle).await;
    assert_eq!(count(&s), 61.0);
    assert_eq!(pool.stats().wait_time.count, 61);
    let _ = sup.shutdown(Duration::from_secs(1)).await;
}

#[actix::test]
async fn the_scrape_follows_the_pool() {
    let handle = recorder();
    let backend = SimBackend::new(3);
    let sup = SupervisorHandle::start(
        backend.clone(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .unwrap();
    let url = ConnectionConfig::parse(&format!("sim://app:{PW}@db1/orders")).unwrap();
    let server = backend.server(&url.primary_host());
    let pool = sup.register("orders", url, Some(config())).await.unwrap();
    // A pool with no name is labelled by its key.
    let anon = sup
        .pool_with(ConnectionConfig::sim("anon"), config())
        .await
        .unwrap();
    let anon_label = format!("key:{}", anon.key());
    assert_eq!(anon_label.len(), "key:".len() + 12, "12 hex digits");
    assert_eq!(anon.stats().name, anon_label);
    assert_eq!(pool.stats().name, "orders");
    drop(anon.acquire().await.unwrap());

    ticks().await;
    let (_, s0) = scrape(&handle).await;
    let o = "orders";
    assert_eq!(value(&s0, "db_client_connection_max", o, &[]), 2.0);
    assert_eq!(value(&s0, "db_client_connection_idle_max", o, &[]), 2.0);
    assert_eq!(value(&s0, "db_client_connection_idle_min", o, &[]), 0.0);
    assert_eq!(value(&s0, "poolwarden_breaker_state", o, &[]), 0.0);
    assert_eq!(
        value(
            &s0,
            "db_client_connection_count",
            &anon_label,
            &[("db_client_connection_state", "idle")]
        ),
        1.0,
        "the unnamed pool's series carry its key"
    );

    // Two connections out: used 2, idle 0; the waits are counted.
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    ticks().await;
    let (_, s1) = scrape(&handle).await;
    let used = [("db_client_connection_state", "used")];
    let idle = [("db_client_connection_state", "idle")];
    assert_eq!(value(&s1, "db_client_connection_count", o, &used), 2.0);
    assert_eq!(value(&s1, "db_client_connection_count", o, &idle), 0.0);
    assert!(
        value(&s1, "db_client_connection_wait_time_seconds_count", o, &[]) >= 2.0,
        "{s1:?}"
    );
    assert!(
        value(
            &s1,
            "db_client_connection_create_time_seconds_count",
            o,
            &[]
        ) >= 2.0
    );
    assert!(value(&s1, "poolwarden_connect_attempts", o, &[]) >= 2.0);

    // A third acquire times out.
    let before = value(&s1, "db_client_connection_timeouts", o, &[]);
    match pool.acquire_timeout(Duration::from_millis(30)).await {
        Err(Error::Timeout { .. }) => {}
        other => panic!("{other:?}"),
    }
    // One closed broken, one back to idle (its use counted).
    a.discard();
    drop(b);
    ticks().await;
    let (_, s2) = scrape(&handle).await;
    assert_eq!(
        value(&s2, "db_client_connection_timeouts", o, &[]),
        before + 1.0
    );
    assert_eq!(
        value(
            &s2,
            "poolwarden_connections_closed",
            o,
            &[("reason", "broken")]
        ),
        1.0
    );
    assert_eq!(value(&s2, "db_client_connection_count", o, &used), 0.0);
    assert_eq!(value(&s2, "db_client_connection_count", o, &idle), 1.0);
    assert!(value(&s2, "db_client_connection_use_time_seconds_count", o, &[]) >= 2.0);
    let st = pool.stats();
    assert_eq!((st.closes.broken, st.timeouts), (1, 1));
    assert!(st.wait_time.count >= 2 && st.use_time.count >= 2, "{st:?}");

    // A soft eviction closes the idle one as a stale generation; then connects fail
    // and the breaker opens.
    assert_eq!(pool.soft_evict(), 1);
    server.fail_next_connects(10);
    for _ in 0..2 {
        assert!(pool
            .acquire_timeout(Duration::from_millis(200))
            .await
            .is_err());
    }
    assert_eq!(pool.stats().breaker, BreakerState::Open);
    ticks().await;
    let (text, s3) = scrape(&handle).await;
    assert_eq!(
        value(
            &s3,
            "poolwarden_connections_closed",
            o,
            &[("reason", "stale_generation")]
        ),
        1.0
    );
    assert_eq!(value(&s3, "poolwarden_breaker_state", o, &[]), 2.0);
    assert_eq!(
        value(&s3, "poolwarden_breaker_transitions", o, &[("to", "open")]),
        1.0
    );
    assert!(
        value(
            &s3,
            "poolwarden_connect_failures",
            o,
            &[("error_kind", "connect")]
        ) >= 2.0
    );
    // Every reason is a series from the start (zero until counted).
    for reason in poolwarden::CloseReason::ALL {
        assert!(
            s3.samples
                .iter()
                .any(|x| x.metric == "poolwarden_connections_closed"
                    && x.labels.get("reason") == Some(reason.as_str())),
            "{reason}"
        );
    }

    // No name, label or value shows the password.
    assert!(!text.contains(PW));
    for x in &s3.samples {
        assert!(!x.metric.contains(PW));
        for (k, v) in x.labels.iter() {
            assert!(!k.contains(PW) && !v.contains(PW), "{k}={v}");
            assert!(!v.contains("sim://"), "no URL in a label: {k}={v}");
        }
    }
    let _ = sup.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn names_render_as_documented() {
    use poolwarden::metric_names as n;
    let expect: HashMap<&str, &str> = [
        (n::CONNECTION_COUNT, "db_client_connection_count"),
        (n::WAIT_TIME, "db_client_connection_wait_time"),
        (n::CLOSED, "poolwarden_connections_closed"),
        (n::SET_LAG, "poolwarden_replica_set_lag"),
    ]
    .into();
    for (name, rendered) in expect {
        assert_eq!(name.replace('.', "_"), rendered);
    }
    assert_eq!(
        n::WAIT_TIME.replace('.', "_") + "_seconds",
        "db_client_connection_wait_time_seconds"
    );
    for name in [n::CLOSED, n::BREAKER_STATE, n::RESTARTS, n::SET_READS] {
        assert!(name.starts_with(n::PREFIX), "{name}");
    }
}
