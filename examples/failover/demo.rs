//! The demo's shared state (the set, the counters, what was seen) and the start, stop and
//! shutdown of the load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use poolwarden::{PoolKey, ReplicaSetHandle, SupervisorHandle};
use tokio::time::Instant;

use crate::counters::{Ejection, MemberCounters, Totals, WriteLog};
use crate::script::Marks;
use crate::status::RolePrinter;
use crate::workload::Workload;
use crate::{BoxError, READERS, WRITERS};

pub struct DemoInner<B: Workload> {
    pub set: ReplicaSetHandle<B>,
    pub labels: Arc<HashMap<PoolKey, String>>,
    pub order: Vec<PoolKey>,
    pub members: HashMap<PoolKey, MemberCounters>,
    pub totals: Totals,
    pub start: Instant,
    pub stop: AtomicBool,
    pub marks: Mutex<Marks>,
    pub ejections: Mutex<Vec<Ejection>>,
    pub writes: Mutex<WriteLog>,
    pub tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

pub struct Demo<B: Workload>(Arc<DemoInner<B>>);

impl<B: Workload> Clone for Demo<B> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<B: Workload> std::ops::Deref for Demo<B> {
    type Target = DemoInner<B>;
    fn deref(&self) -> &DemoInner<B> {
        &self.0
    }
}

impl<B: Workload> Demo<B> {
    /// Subscribe to role changes, then start the readers, the writers and the monitor.
    pub async fn start(
        sup: &SupervisorHandle<B>,
        set: &ReplicaSetHandle<B>,
        labels: HashMap<PoolKey, String>,
    ) -> Result<Self, BoxError> {
        let order: Vec<PoolKey> = set.topology().iter().map(|m| m.key).collect();
        let labels = Arc::new(labels);
        let start = Instant::now();
        sup.subscribe_topology(
            RolePrinter {
                start,
                labels: Arc::clone(&labels),
            }
            .start()
            .recipient(),
        )
        .await?;
        let demo = Demo(Arc::new(DemoInner {
            set: set.clone(),
            members: order
                .iter()
                .map(|k| (*k, MemberCounters::default()))
                .collect(),
            labels,
            order,
            totals: Totals::default(),
            start,
            stop: AtomicBool::new(false),
            marks: Mutex::default(),
            ejections: Mutex::default(),
            writes: Mutex::default(),
            tasks: Mutex::default(),
        }));
        let mut tasks = Vec::new();
        for _ in 0..READERS {
            tasks.push(actix::spawn(demo.clone().reader()));
        }
        for _ in 0..WRITERS {
            tasks.push(actix::spawn(demo.clone().writer()));
        }
        tasks.push(actix::spawn(demo.clone().monitor()));
        *demo.tasks.lock().unwrap() = tasks;
        Ok(demo)
    }

    pub fn label(&self, key: PoolKey) -> String {
        self.labels
            .get(&key)
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    pub fn note(&self, what: &str) {
        println!("  >> {:>5.1}s {what}", self.start.elapsed().as_secs_f64());
    }

    pub fn member(&self, key: PoolKey) -> Option<&MemberCounters> {
        self.members.get(&key)
    }

    /// Stop the load and wait for every task to finish its current operation.
    pub async fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        for t in tasks {
            // An operation in flight ends within the acquire timeout.
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
    }

    pub async fn shutdown(&self, sup: &SupervisorHandle<B>) -> Result<(), BoxError> {
        let report = sup.shutdown(Duration::from_secs(5)).await?;
        println!(
            "shut down: {} pools closed, {} connections closed, {} still checked out",
            report.pools_closed, report.connections_closed, report.still_checked_out
        );
        Ok(())
    }
}
