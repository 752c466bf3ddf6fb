//! A Prometheus recorder that can be switched on for the pools created while it is on:
//! installed once for the whole process (a `metrics` recorder cannot be uninstalled), it
//! hands out the Prometheus recorder's handles while on and no-op handles while off, so
//! only the pools scenario 1 creates for its "with a recorder" rows record anything and
//! the other scenarios run as without a recorder.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

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
