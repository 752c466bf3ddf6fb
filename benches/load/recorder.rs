//! A Prometheus recorder that can be switched on for the pools created while it is on:
//! installed once for the whole process (a `metrics` recorder cannot be uninstalled), it
//! hands out the Prometheus recorder's handles while on and no-op handles while off, so
//! only the pools the scenarios create for their "poolwarden (recorder)" rows record
//! anything (see [`with_recorder`]) and every other pool runs as without a recorder. A
//! [`Scraper`] renders the recorder once a second meanwhile, as a Prometheus server would.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use poolwarden::{Backend, PoolHandle};

struct Switch {
    on: AtomicBool,
    inner: PrometheusRecorder,
}

impl Recorder for Switch {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description)
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description)
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description)
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_counter(key, metadata)
        } else {
            Counter::noop()
        }
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_gauge(key, metadata)
        } else {
            Gauge::noop()
        }
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_histogram(key, metadata)
        } else {
            Histogram::noop()
        }
    }
}

static SWITCH: OnceLock<(&'static Switch, PrometheusHandle)> = OnceLock::new();

fn switch() -> &'static (&'static Switch, PrometheusHandle) {
    SWITCH.get_or_init(|| {
        let inner = PrometheusBuilder::new()
            .set_enable_unit_suffix(true)
            .build_recorder();
        let handle = inner.handle();
        let s: &'static Switch = Box::leak(Box::new(Switch {
            on: AtomicBool::new(false),
            inner,
        }));
        metrics::set_global_recorder(s).expect("the bench installs the only recorder");
        (s, handle)
    })
}

/// Install the (switched off) recorder, once per process.
pub fn install() {
    switch();
}

/// Pools created while this is true register with the Prometheus recorder.
pub fn set(on: bool) {
    switch().0.on.store(on, Ordering::Relaxed);
}

/// What a scrape would return.
pub fn render() -> String {
    switch().1.render()
}

/// Create a pool (`create`) with the recorder switched on, and keep it on until the pool's
/// metrics, registered when its actor starts, show in a scrape under `label(&pool)` (its
/// `PoolStats::name`).
pub async fn with_recorder<T>(create: impl Future<Output = T>, label: impl Fn(&T) -> String) -> T {
    set(true);
    let pool = create.await;
    let label = format!("\"{}\"", label(&pool));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !render().contains(&label) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    set(false);
    assert!(
        render().contains(&label),
        "the pool {label} never registered with the Prometheus recorder"
    );
    pool
}

/// Wait until `pool`'s actor has started, and so registered its metrics (no-op handles
/// while the recorder is off), and check that none went to the recorder: call it on a pool
/// created without the recorder before switching it on for the next one.
pub async fn registered<B: Backend>(pool: &PoolHandle<B>) {
    // A message is handled only after the actor's start.
    pool.warm(0).await.expect("the pool actor answers");
    let label = format!("\"{}\"", pool.stats().name);
    assert!(
        !render().contains(&label),
        "the pool {label} registered with the Prometheus recorder"
    );
}

/// Renders the recorder about once a second on a thread of its own, until dropped.
pub struct Scraper {
    on: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scraper {
    pub fn start() -> Self {
        install();
        let on = Arc::new(AtomicBool::new(true));
        let thread = {
            let on = Arc::clone(&on);
            std::thread::spawn(move || loop {
                std::thread::park_timeout(Duration::from_secs(1));
                if !on.load(Ordering::Relaxed) {
                    break;
                }
                drop(render());
            })
        };
        Self {
            on,
            thread: Some(thread),
        }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.on.store(false, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
