//! The scripted outages of the simulated run: four servers, then a replica dies, the primary
//! dies, a "failover manager" promotes a replica, and everything heals.

use std::collections::HashMap;
use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimBehavior, SimServer};
use poolwarden::{ConnectionConfig, PoolKey};
use tokio::time::Instant;

use crate::demo::Demo;
use crate::BoxError;

/// The simulated servers: `db1` the primary, `db2`, `db3` and `db4` replicas replaying
/// from it.
pub struct Cluster {
    pub sim: SimBackend,
    pub primary: ConnectionConfig,
    pub replicas: Vec<ConnectionConfig>,
    /// `db1` to `db4`.
    pub servers: [SimServer; 4],
    /// Each member's name (`db1` …), by its pool.
    pub labels: HashMap<PoolKey, String>,
    /// The pools of `db1` to `db4`.
    pub keys: [PoolKey; 4],
}

impl Cluster {
    /// Four simulated servers, the replicas replaying from the primary.
    pub fn new() -> Result<Self, BoxError> {
        let sim = SimBackend::new(42);
        sim.set_default_behavior(SimBehavior {
            connect_latency: Duration::from_millis(5),
            query_latency: Duration::from_millis(2),
            ..SimBehavior::default()
        });
        let primary = ConnectionConfig::parse("sim://app@db1:5432/orders")?;
        let replicas: Vec<ConnectionConfig> = (2..=4)
            .map(|i| ConnectionConfig::parse(&format!("sim://app@db{i}:5432/orders")))
            .collect::<Result<_, _>>()?;
        let [db1, db2, db3, db4] = [&primary, &replicas[0], &replicas[1], &replicas[2]]
            .map(|c| sim.server(&c.primary_host()));
        for replica in [&db2, &db3, &db4] {
            replica.replicate_from(&db1);
        }
        let labels: HashMap<PoolKey, String> = std::iter::once(&primary)
            .chain(&replicas)
            .map(|c| (PoolKey::of(c), c.hosts[0].host.clone()))
            .collect();
        let keys = [&primary, &replicas[0], &replicas[1], &replicas[2]].map(PoolKey::of);
        Ok(Self {
            sim,
            primary,
            replicas,
            servers: [db1, db2, db3, db4],
            labels,
            keys,
        })
    }
}

/// When each scripted fault happens, from the start of the load.
pub struct Script {
    kill_replica: Duration,
    kill_primary: Duration,
    promote: Duration,
    heal: Duration,
    end: Duration,
}

impl Script {
    pub fn over(total: Duration) -> Self {
        let at = |n: u32| total.mul_f64(f64::from(n) / 24.0);
        Self {
            kill_replica: at(4),
            kill_primary: at(10),
            promote: at(11),
            heal: at(17),
            end: total,
        }
    }

    /// Prints when each fault happens.
    pub fn print(&self) {
        println!(
            "script: kill db3 at {:.1}s, kill the primary db1 at {:.1}s, promote db2 at {:.1}s, \
             heal all at {:.1}s",
            self.kill_replica.as_secs_f64(),
            self.kill_primary.as_secs_f64(),
            self.promote.as_secs_f64(),
            self.heal.as_secs_f64()
        );
    }

    /// Plays the script on `db1` to `db4`, from the start of the load, marking each fault in
    /// `demo.marks` when it happened; ends at the end of the run.
    pub async fn play(self, demo: Demo<SimBackend>, servers: [SimServer; 4]) {
        let [db1, db2, db3, db4] = servers;
        let start = demo.start;
        sleep_until(start + self.kill_replica).await;
        demo.note("kill db3 (replica): it refuses connections, open ones are killed");
        db3.go_down();
        demo.marks.lock().unwrap().replica_killed = Some(Instant::now());
        sleep_until(start + self.kill_primary).await;
        demo.note("kill db1 (the primary)");
        db1.go_down();
        demo.marks.lock().unwrap().primary_killed = Some(Instant::now());
        sleep_until(start + self.promote).await;
        demo.note("failover manager: promote db2, point db3 and db4 at it");
        db2.promote();
        db3.replicate_from(&db2);
        db4.replicate_from(&db2);
        demo.marks.lock().unwrap().promoted = Some(Instant::now());
        sleep_until(start + self.heal).await;
        demo.note("heal: db3 comes back, db1 rejoins as a replica of db2");
        db1.replicate_from(&db2);
        db1.come_up();
        db3.come_up();
        demo.marks.lock().unwrap().healed = Some(Instant::now());
        sleep_until(start + self.end).await;
    }
}

/// When the scripted faults happened.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    pub replica_killed: Option<Instant>,
    pub primary_killed: Option<Instant>,
    pub promoted: Option<Instant>,
    pub healed: Option<Instant>,
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(t).await;
}
