//! Unit tests of the simulated backend, by concern. The helpers and the backend's items
//! are here; each file imports what it uses from this module.

mod connections;
mod failure_rates;
mod faults;
mod outages;
mod world;

use std::time::Duration;

use super::world::server_seed;
use super::{SimBackend, SimBehavior, SimRole, SimServer};
use crate::connection::ConnectionConfig;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A world, a config and the server the config reaches.
fn setup(name: &str) -> (SimBackend, ConnectionConfig, SimServer) {
    let sim = SimBackend::new(7);
    let cfg = ConnectionConfig::sim(name);
    let server = sim.server(&cfg.primary_host());
    (sim, cfg, server)
}

fn latency(connect: u64, query: u64) -> SimBehavior {
    SimBehavior {
        connect_latency: ms(connect),
        query_latency: ms(query),
        ..SimBehavior::default()
    }
}
