//! The dashboard in a real headless browser: a supervisor on the simulated backend with a
//! pool and a replica set under light load, `dashboard::serve` on 127.0.0.1:0 with a
//! token, the page loaded in Chromium through chromedriver (WebDriver). The page must show
//! live data, show the pool's breaker open during an outage and closed again after it,
//! grow its utilization chart, and never show the pool's password; requests without the
//! right token get 401 and nothing else.
//!
//! Real time, not paused: the browser polls real seconds. Every wait is bounded.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::browser::Browser;
use fantoccini::{Client, Locator};
use poolwarden::backends::sim::{SimBackend, SimBehavior};
use poolwarden::dashboard::{self, DashboardConfig};
use poolwarden::{
    BreakerConfig, ConnectionConfig, PoolConfig, PoolKey, ReplicaSetConfig, Secret,
    SupervisorConfig, SupervisorHandle,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "hunter2-Xq9-dashboard";
const TOKEN: &str = "tok-3f9c2b7e1d";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A breaker that opens after 2 failed connects for 200 ms (at most 500 ms) and closes
/// after one good trial; background probes every 200 ms heal it with no traffic.
fn pool_config() -> PoolConfig {
    PoolConfig {
        min_idle: 1,
        max_size: 4,
        acquire_timeout: ms(300),
        connect_timeout: ms(200),
        probe_timeout: ms(200),
        probe_interval: Some(ms(200)),
        breaker: BreakerConfig {
            failure_threshold: 2,
            success_threshold: 1,
            open_for: ms(200),
            grow_after: Duration::ZERO,
            max_open_for: ms(500),
        },
        ..PoolConfig::default()
    }
}

/// One raw HTTP/1.1 request; the whole reply (status line, headers, body) as text, read
/// until the server closes or `read_for` passes.
async fn http(
    addr: std::net::SocketAddr,
    target: &str,
    headers: &str,
    read_for: Duration,
) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req =
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + read_for;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An attribute of the first element matching `css`, if there is one.
async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    let el = c.find(Locator::Css(css)).await.ok()?;
    el.attr(name).await.ok().flatten()
}

/// Poll the page every 100 ms until `f` answers `Some`, for at most `limit`; on timeout
/// the failure shows what the page says.
async fn until<T, F, Fut>(c: &Client, limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            eprintln!("  {what}: after {:.1}s", start.elapsed().as_secs_f64());
            return v;
        }
        if start.elapsed() >= limit {
            let text = c
                .execute("return document.body.innerText", vec![])
                .await
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .unwrap_or_else(|e| format!("(page unreadable: {e})"));
            panic!("not within {limit:?}: {what}; the page says:\n{text}");
        }
        tokio::time::sleep(ms(100)).await;
    }
}

#[actix::test]
async fn the_page_follows_an_outage_live_and_shows_no_secret() {
    let Some(browser) = Browser::start().await else {
        return;
    };

    // A supervisor with a pool (password-protected) and a replica set of two.
    let sim = SimBackend::new(5);
    sim.set_default_behavior(SimBehavior {
        connect_latency: ms(5),
        query_latency: ms(2),
        ..SimBehavior::default()
    });
    let url = format!("sim://app:{PASSWORD}@orders-db/orders");
    let config = ConnectionConfig::parse(&url).unwrap();
    let key = PoolKey::of(&config).to_hex();
    let orders_db = sim.server(&config.primary_host());
    orders_db.set_password(Some(PASSWORD));
    let (p, r) = (
        ConnectionConfig::sim("catalog-p"),
        ConnectionConfig::sim("catalog-r1"),
    );
    let (primary, replica) = (sim.server(&p.primary_host()), sim.server(&r.primary_host()));
    replica.replicate_from(&primary);
    let sup = SupervisorHandle::start(sim.clone(), SupervisorConfig::default()).unwrap();
    sup.register("orders", config, Some(pool_config()))
        .await
        .unwrap();
    let pool = sup.lookup("orders").await.unwrap();
    let mut set_config = ReplicaSetConfig::new("catalog", p, vec![r]);
    set_config.topology_interval = ms(200);
    set_config.pool = Some(pool_config());
    let set = sup.replica_set(set_config).await.unwrap();

    // Light load: the charts have something to draw, the outage something to break.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, pool, set) = (Arc::clone(&stop), pool.clone(), set.clone());
        actix::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut c) = pool.acquire().await {
                    let _ = c.query("SELECT 1").await;
                }
                if let Ok(mut c) = set.read().await {
                    let _ = c.query("SELECT 1").await;
                }
                tokio::time::sleep(ms(20)).await;
            }
        })
    };

    let server = dashboard::serve_with(
        sup.clone(),
        "127.0.0.1:0",
        DashboardConfig {
            interval: ms(250),
            ..DashboardConfig::default().with_token(Secret::new(TOKEN))
        },
    )
    .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());

    // Without the right token: 401, an empty body, nothing else.
    let t = Instant::now();
    for (target, headers) in [
        ("/", String::new()),
        ("/?token=wrong", String::new()),
        ("/events", String::new()),
        ("/events", "Authorization: Bearer wrong\r\n".to_string()),
        ("/events", format!("Authorization: Basic {TOKEN}\r\n")),
        ("/nothing-here", String::new()),
    ] {
        let reply = http(addr, target, &headers, Duration::from_secs(5)).await;
        assert!(
            reply.starts_with("HTTP/1.1 401"),
            "{target} {headers:?}: {reply}"
        );
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(body.is_empty(), "{target}: a body: {body:?}");
        assert!(
            head.to_ascii_lowercase().contains("content-length: 0"),
            "{head}"
        );
    }
    eprintln!("  401 checks: {:?}", t.elapsed());

    // With it: the page, and a chunk of the stream, neither holding the password.
    let page = http(
        addr,
        &format!("/?token={TOKEN}"),
        "",
        Duration::from_secs(5),
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("content-security-policy"), "{page}");
    assert!(!page.contains(PASSWORD), "the page holds the password");
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let chunk = http(addr, "/events", &auth, Duration::from_millis(1500)).await;
    assert!(chunk.starts_with("HTTP/1.1 200"), "{chunk}");
    assert!(chunk.contains("text/event-stream"), "{chunk}");
    assert!(chunk.contains("event: snapshot"), "{chunk}");
    assert!(chunk.contains(&key), "the stream names the pool by key");
    assert!(
        chunk.contains("sim://app:***@orders-db"),
        "the redacted target"
    );
    assert!(!chunk.contains(PASSWORD), "the stream holds the password");

    // The page, live.
    let c = &browser.client;
    c.goto(&format!("{}?token={TOKEN}", server.url()))
        .await
        .unwrap();
    let pool_css = format!("article[data-pool-key=\"{key}\"]");
    let util_css = format!("{pool_css} canvas.util");
    until(
        c,
        Duration::from_secs(15),
        "live data on the page",
        || async {
            let live = attr(c, "#conn", "data-conn").await? == "live";
            let points: u32 = attr(c, &util_css, "data-points").await?.parse().ok()?;
            (live && points >= 2).then_some(())
        },
    )
    .await;
    assert_eq!(
        c.current_url().await.unwrap().query(),
        None,
        "the token left the address bar"
    );
    assert_eq!(
        attr(c, &pool_css, "data-breaker").await.as_deref(),
        Some("closed")
    );
    until(
        c,
        Duration::from_secs(10),
        "the replica set's members listed",
        || async {
            let css = "[data-set=\"catalog\"] tr[data-role=\"replica\"]";
            attr(c, css, "data-member-key").await
        },
    )
    .await;
    let points_before: u32 = attr(c, &util_css, "data-points")
        .await
        .unwrap()
        .parse()
        .unwrap();

    // An outage: the pool's server and the set's replica go down.
    orders_db.go_down();
    replica.go_down();
    until(c, Duration::from_secs(15), "breaker shows open", || async {
        (attr(c, &pool_css, "data-breaker").await? == "open").then_some(())
    })
    .await;
    until(c, Duration::from_secs(10), "pool stands out", || async {
        (attr(c, &pool_css, "data-state").await? == "bad").then_some(())
    })
    .await;
    until(
        c,
        Duration::from_secs(10),
        "replica shows ejected",
        || async {
            let css = "[data-set=\"catalog\"] tr[data-role=\"replica\"]";
            (attr(c, css, "data-usable").await? == "false").then_some(())
        },
    )
    .await;
    tokio::time::sleep(ms(1500)).await; // a few points of the outage on the charts
    let shot = c.screenshot().await.unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, shot).unwrap();
    eprintln!("  screenshot: {}", path.display());

    // Healed: closed again, and the chart kept growing.
    orders_db.come_up();
    replica.come_up();
    until(
        c,
        Duration::from_secs(20),
        "breaker shows closed again",
        || async { (attr(c, &pool_css, "data-breaker").await? == "closed").then_some(()) },
    )
    .await;
    let points_after: u32 = attr(c, &util_css, "data-points")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        points_after > points_before,
        "{points_before} -> {points_after} points"
    );
    let logged = c
        .find_all(Locator::Css("#breaker-log li[data-to=\"open\"]"))
        .await
        .unwrap();
    assert!(!logged.is_empty(), "the transition log shows the opening");
    let dom = c.source().await.unwrap();
    assert!(!dom.contains(PASSWORD), "the live page holds the password");
    assert!(
        dom.contains("app:***@orders-db"),
        "the page shows the redacted target"
    );

    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    eprintln!("  dropped updates: {}", server.dropped_updates());
    browser.close().await;
    server.stop().await;
    sup.shutdown(Duration::from_secs(2)).await.unwrap();
}
