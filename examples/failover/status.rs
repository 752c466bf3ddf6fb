//! What the demo prints while it runs: role changes as they are published, members ejected
//! and readmitted, and one status line per second.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use poolwarden::messages::RoleChanged;
use poolwarden::{BreakerState, MemberInfo, PoolKey, Role};
use tokio::time::Instant;

use crate::common;
use crate::counters::Ejection;
use crate::demo::Demo;
use crate::workload::Workload;

/// Prints role changes as they are published.
pub struct RolePrinter {
    pub start: Instant,
    pub labels: Arc<HashMap<PoolKey, String>>,
}

impl Actor for RolePrinter {
    type Context = Context<Self>;
}

impl Handler<RoleChanged> for RolePrinter {
    type Result = ();
    fn handle(&mut self, e: RoleChanged, _: &mut Self::Context) {
        let label = self.labels.get(&e.key).cloned().unwrap_or(e.host);
        println!(
            "  >> {:>5.1}s role change in `{}`: {label} {} -> {}",
            (e.at - self.start).as_secs_f64(),
            e.set,
            role_name(e.from),
            role_name(e.to)
        );
    }
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Primary => "primary",
        Role::Replica => "replica",
    }
}

impl<B: Workload> Demo<B> {
    /// Watch `topology()` for members the set stops or starts routing to.
    pub async fn monitor(self) {
        let mut usable: HashMap<PoolKey, bool> = self
            .set
            .topology()
            .iter()
            .map(|m| (m.key, m.usable))
            .collect();
        while !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            for m in self.set.topology() {
                let was = usable.insert(m.key, m.usable);
                if was.is_some_and(|w| w != m.usable) {
                    let at = Instant::now();
                    self.ejections.lock().unwrap().push(Ejection {
                        key: m.key,
                        usable: m.usable,
                        at,
                    });
                    println!(
                        "  >> {:>5.1}s {} {}",
                        (at - self.start).as_secs_f64(),
                        self.label(m.key),
                        if m.usable {
                            "readmitted: the set routes to it again"
                        } else {
                            "ejected: the set no longer routes to it"
                        }
                    );
                }
            }
        }
    }

    /// Print a status line every second until `until` resolves or Ctrl-C; answers
    /// whether it was interrupted.
    pub async fn run(&self, until: impl Future<Output = ()>) -> bool {
        println!(
            "status, per member: role (P primary, R replica, * = not routed to), breaker, \
             in use/idle, reads/s, errors; then the whole set's writes/s and errors"
        );
        let mut ticker =
            tokio::time::interval_at(self.start + Duration::from_secs(1), Duration::from_secs(1));
        let mut last: HashMap<PoolKey, (u64, u64)> = HashMap::new();
        let mut last_totals = (0, 0);
        let mut last_tick = self.start;
        let status = async {
            loop {
                let now = ticker.tick().await;
                let dt = (now - last_tick).as_secs_f64().max(1e-3);
                last_tick = now;
                println!("{}", self.status_line(now, dt, &mut last, &mut last_totals));
            }
        };
        tokio::pin!(until);
        tokio::select! {
            _ = &mut until => false,
            _ = status => false,
            _ = common::shutdown_signal() => {
                println!("  >> {:>5.1}s interrupted: stopping the load", self.start.elapsed().as_secs_f64());
                true
            }
        }
    }

    pub fn status_line(
        &self,
        now: Instant,
        dt: f64,
        last: &mut HashMap<PoolKey, (u64, u64)>,
        last_totals: &mut (u64, u64),
    ) -> String {
        let topology: HashMap<PoolKey, MemberInfo> = self
            .set
            .topology()
            .into_iter()
            .map(|m| (m.key, m))
            .collect();
        let mut line = format!("{:>4.0}s", (now - self.start).as_secs_f64());
        for key in &self.order {
            let Some(info) = topology.get(key) else {
                continue;
            };
            let c = &self.members[key];
            let (reads, errors) = (
                c.reads.load(Ordering::Relaxed),
                c.errors.load(Ordering::Relaxed),
            );
            let (r0, e0) = last.insert(*key, (reads, errors)).unwrap_or((0, 0));
            let role = match (info.role, info.usable) {
                (Role::Primary, true) => "P ",
                (Role::Primary, false) => "P*",
                (Role::Replica, true) => "R ",
                (Role::Replica, false) => "R*",
            };
            let breaker = match info.breaker {
                BreakerState::Closed => "ok  ",
                BreakerState::Open => "OPEN",
                BreakerState::HalfOpen => "half",
            };
            let _ = write!(
                line,
                " | {} {role} {breaker} {:>2}/{:<2} {:>4}r/s {:>2}e",
                self.label(*key),
                info.in_use,
                info.idle,
                ((reads - r0) as f64 / dt).round(),
                errors - e0,
            );
        }
        let t = &self.totals;
        let writes = t.writes.load(Ordering::Relaxed);
        let errors = t.read_errors.load(Ordering::Relaxed) + t.write_errors.load(Ordering::Relaxed);
        let (w0, e0) = *last_totals;
        *last_totals = (writes, errors);
        let _ = write!(
            line,
            " || {:>3}w/s {:>2}e",
            ((writes - w0) as f64 / dt).round(),
            errors - e0
        );
        line
    }
}
