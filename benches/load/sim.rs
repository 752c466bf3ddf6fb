//! Scenario 8 (cold storm) on the simulated backend. Scenario 5 (many keys) is `keys.rs`,
//! scenario 6 (routing) `routing.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimBehavior};
use poolwarden::{ConnectionConfig, EmbeddedSupervisor, PoolConfig, SupervisorConfig};
use tokio::time::Instant;

use crate::chart;
use crate::peers::{self, ConnectGauge, Floor, NoopManager};
use crate::report::{Section, Table, Target};
use crate::Ctx;

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ----- 8. cold storm -----------------------------------------------------------------------

const STORM_TASKS: usize = 500;
const STORM_SIZE: u32 = 16;
const STORM_DONE: u64 = 1_000;
const CONNECT_LATENCY: Duration = Duration::from_millis(5);
const QUERY_LATENCY: Duration = Duration::from_millis(1);

/// 500 tasks loop acquire, a 1 ms query, release, until 1,000 have completed. Answers the
/// time to the 1,000th completion.
async fn storm<F, Fut>(op: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let reached = Arc::new(tokio::sync::Notify::new());
    let start = Instant::now();
    let at = Arc::new(std::sync::Mutex::new(None));
    let tasks: Vec<_> = (0..STORM_TASKS)
        .map(|_| {
            let (op, done, reached, at) = (op.clone(), done.clone(), reached.clone(), at.clone());
            tokio::spawn(async move {
                while done.load(Ordering::Relaxed) < STORM_DONE {
                    op().await;
                    if done.fetch_add(1, Ordering::Relaxed) + 1 == STORM_DONE {
                        *at.lock().expect("lock") = Some(start.elapsed());
                        reached.notify_one();
                    }
                }
            })
        })
        .collect();
    reached.notified().await;
    for t in tasks {
        let _ = t.await;
    }
    let took = at.lock().expect("lock").expect("set when reached");
    took
}

pub async fn cold_storm(ctx: &Ctx, targets: &mut Vec<Target>) -> Section {
    let mut section = Section::new(
        8,
        "Cold storm",
        format!(
            "{STORM_TASKS} tasks start at once on an empty pool of {STORM_SIZE} (min_idle 0); \
             each loops acquire, a {} ms query, release. Connects take {} ms (poolwarden: the \
             simulated backend with these latencies and its default config: `max_connecting` \
             16, narrowed only after failed connects; the others: managers that sleep as \
             long). Time to the first {STORM_DONE} completions (median of rounds) and the peak number \
             of connects in progress at once (largest of rounds).",
            QUERY_LATENCY.as_millis(),
            CONNECT_LATENCY.as_millis()
        ),
    );
    let rounds = if ctx.quick { 1 } else { 5 };
    let names = ["floor", "poolwarden", "bb8", "deadpool", "mobc"];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut peaks = vec![0usize; names.len()];
    let mut connects = vec![0usize; names.len()];
    let behavior = SimBehavior {
        connect_latency: CONNECT_LATENCY,
        query_latency: QUERY_LATENCY,
        ..SimBehavior::default()
    };
    for round in 0..rounds {
        // floor
        let gauge = Arc::new(ConnectGauge::default());
        let fl = Floor::<peers::Noop>::empty(STORM_SIZE as usize);
        let g = gauge.clone();
        let t = storm(move || {
            let (fl, g) = (fl.clone(), g.clone());
            async move {
                let c = fl.get_or_connect(|| g.connect(CONNECT_LATENCY)).await;
                tokio::time::sleep(QUERY_LATENCY).await;
                drop(c);
            }
        })
        .await;
        times[0].push(t.as_secs_f64());
        peaks[0] = peaks[0].max(gauge.peak());
        connects[0] = connects[0].max(gauge.total.load(Ordering::Relaxed));

        // poolwarden
        let sim = SimBackend::default();
        sim.set_default_behavior(behavior.clone());
        let sup = EmbeddedSupervisor::spawn(sim.clone(), SupervisorConfig::default())
            .expect("supervisor");
        let conn = ConnectionConfig::sim(format!("storm-{round}"));
        let server = sim.server(&conn.primary_host());
        let pw = sup
            .handle()
            .pool_with(
                conn,
                PoolConfig {
                    min_idle: 0,
                    max_size: STORM_SIZE,
                    ..PoolConfig::default()
                },
            )
            .await
            .expect("pool");
        let p = pw.clone();
        let t = storm(move || {
            let p = p.clone();
            async move {
                let mut c = p.acquire().await.expect("acquire");
                c.query("SELECT 1").await.expect("query");
            }
        })
        .await;
        times[1].push(t.as_secs_f64());
        peaks[1] = peaks[1].max(server.peak_in_flight_connects());
        connects[1] = connects[1].max(server.connects() as usize);
        drop(pw);
        let _ = sup.shutdown(Duration::from_secs(5)).await;

        // bb8
        let m = NoopManager {
            latency: CONNECT_LATENCY,
            gauge: Arc::new(ConnectGauge::default()),
        };
        let gauge = m.gauge.clone();
        let bb = peers::bb8_noop(STORM_SIZE, None, m).await;
        let t = storm(move || {
            let bb = bb.clone();
            async move {
                let c = bb.get().await.expect("bb8 get");
                tokio::time::sleep(QUERY_LATENCY).await;
                drop(c);
            }
        })
        .await;
        times[2].push(t.as_secs_f64());
        peaks[2] = peaks[2].max(gauge.peak());
        connects[2] = connects[2].max(gauge.total.load(Ordering::Relaxed));

        // deadpool
        let m = NoopManager {
            latency: CONNECT_LATENCY,
            gauge: Arc::new(ConnectGauge::default()),
        };
        let gauge = m.gauge.clone();
        let dp = peers::deadpool_noop(STORM_SIZE, m);
        let t = storm(move || {
            let dp = dp.clone();
            async move {
                let c = dp.get().await.expect("deadpool get");
                tokio::time::sleep(QUERY_LATENCY).await;
                drop(c);
            }
        })
        .await;
        times[3].push(t.as_secs_f64());
        peaks[3] = peaks[3].max(gauge.peak());
        connects[3] = connects[3].max(gauge.total.load(Ordering::Relaxed));

        // mobc
        let m = NoopManager {
            latency: CONNECT_LATENCY,
            gauge: Arc::new(ConnectGauge::default()),
        };
        let gauge = m.gauge.clone();
        let mb = peers::mobc_noop(STORM_SIZE, m);
        let t = storm(move || {
            let mb = mb.clone();
            async move {
                let c = mb.get().await.expect("mobc get");
                tokio::time::sleep(QUERY_LATENCY).await;
                drop(c);
            }
        })
        .await;
        times[4].push(t.as_secs_f64());
        peaks[4] = peaks[4].max(gauge.peak());
        connects[4] = connects[4].max(gauge.total.load(Ordering::Relaxed));
    }
    let mut table = Table::new(
        "",
        &[
            "pool",
            "time to 1,000 completions",
            "peak connects at once",
            "connects in all",
        ],
    );
    let mut bars = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let t = median(times[i].clone());
        ctx.progress(&format!(
            "  {name}: {:.1} ms to {STORM_DONE}, peak {} connects",
            t * 1e3,
            peaks[i]
        ));
        table.row(vec![
            name.to_string(),
            format!("{:.1} ms", t * 1e3),
            peaks[i].to_string(),
            connects[i].to_string(),
        ]);
        bars.push((name.to_string(), i, t * 1e3));
    }
    section.tables.push(table);
    let max_connecting = PoolConfig::default().max_connecting;
    targets.push(
        Target::at_most(
            8,
            "peak concurrent connects in a cold storm",
            peaks[1] as f64,
            f64::from(max_connecting),
            format!("{} (largest of the rounds)", peaks[1]),
            format!("≤ max_connecting ({max_connecting}, the default)"),
        )
        .because(crate::causes::storm_connects(peaks[1], max_connecting)),
    );
    // The best peer: the faster of bb8 and deadpool by their median; ratios per round.
    let per_round = |i: usize| crate::ratios::PerRound::new(times[i].clone());
    let (pw_r, bb8_r, dp_r) = (per_round(1), per_round(2), per_round(3));
    let (peer_t, peer_r) = crate::ratios::best([(2, &bb8_r), (3, &dp_r)], false);
    targets.push(Target::median_vs(
        8,
        "time to 1,000 completions in a cold storm vs the best peer",
        &pw_r,
        (peer_r, names[peer_t]),
        crate::ratios::Bound::AtMost(1.05),
        |t| format!("{:.1} ms", t * 1e3),
        |r| crate::causes::storm_time(r, names[peer_t]),
    ));
    let file = "s8-storm.svg";
    if let Err(e) = chart::hbars(
        &ctx.chart_dir.join(file),
        "8. cold storm: time to 1,000 completions (ms, lower is better)",
        "ms",
        &bars,
    ) {
        ctx.progress(&format!("  chart failed: {e}"));
    }
    section
        .charts
        .push((file.into(), "time to 1,000 completions".into()));
    section
}
