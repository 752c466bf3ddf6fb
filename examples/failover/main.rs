//! The failover demo: a replica set (one primary, three read replicas) under steady read
//! and write load while its members die and come back.
//!
//! ```text
//! cargo run --example failover                  # about 24 s, on the simulated backend
//! cargo run --example failover -- --fast        # the same story in 6 s (CI)
//! cargo run --example failover -- --seconds 60  # the same story, slower
//! cargo run --example failover -- --strategy least-loaded   # or random, round-robin, power-of-two (the default)
//! ```
//!
//! On the simulated backend (the default) the demo scripts the faults, as fractions of the
//! run (the times shown are those of the default 24 s):
//!
//! - at 4 s replica `db3` dies (its server refuses connections, open ones are killed);
//! - at 10 s the primary `db1` dies; at 11 s a "failover manager" promotes replica `db2`
//!   and points the other replicas at it (the library only notices: it reads each
//!   member's role);
//! - at 17 s everything heals: `db3` comes back, `db1` rejoins as a replica of `db2`.
//!
//! Twelve readers and three writers run all along (each write is followed by a
//! read-your-writes read with its causality token). Every second one status line shows,
//! per member: role (`*` when the set does not route to it), breaker state, connections in
//! use / idle, reads per second and errors callers saw on it that second. At the end a
//! summary: reads and writes served, errors seen by callers, time to eject (from the kill
//! until the set stops routing to the member), time to fail over (from the primary's kill
//! until a write succeeds on the promoted member), time to readmit. Everything is measured,
//! nothing is assumed. Ctrl-C (or SIGTERM) stops the run early: the summary is printed and
//! the supervisor shut down cleanly.
//!
//! With `--dashboard` (the `dashboard` feature is on by default) the demo also serves the live
//! page on 127.0.0.1 and prints its address: watch the replicas die and come back.
//!
//! ```text
//! cargo run --example failover -- --dashboard --seconds 120
//! ```
//!
//! The demo prints its own event lines (`>>`); the library's logs (breaker transitions,
//! role changes) are off unless asked for: `RUST_LOG=poolwarden=info`.
//!
//! # Real servers
//!
//! With the `postgres` feature (on by default), give PostgreSQL URLs and the same load runs
//! against them:
//!
//! ```text
//! cargo run --example failover -- \
//!     --primary postgres://app:secret@db1:5432/app \
//!     --replica postgres://app:secret@db2:5432/app --replica postgres://app:secret@db3:5432/app
//! # or
//! FAILOVER_PRIMARY_URL=postgres://app:secret@db1/app \
//! FAILOVER_REPLICA_URLS=postgres://app:secret@db2/app,postgres://app:secret@db3/app \
//!     cargo run --example failover
//! ```
//!
//! It creates the table `poolwarden_failover` on the primary if it is missing, waits until
//! the replicas have it, then reads (`SELECT max(id)`) and writes (`INSERT`) until Ctrl-C,
//! or for `--seconds N`. It injects no faults: stopping servers and promoting a replica are
//! the operator's to do, e.g. `pg_ctl -D <primary> -m immediate stop`, then
//! `pg_ctl -D <replica> promote`.
//! The summary then reports what it saw: members ejected and readmitted (with times since
//! start) and, if the writes moved to another member, how long writes failed before one
//! succeeded there. Roles come from the backend's `Backend::status`; a backend without it
//! routes by the configured roles only.

#[path = "../common/mod.rs"]
mod common;

mod args;
mod config;
mod counters;
mod dashboard;
mod demo;
mod real_pg;
mod script;
mod status;
mod summary;
mod workload;

use std::error::Error as StdError;
use std::time::Duration;

use poolwarden::SupervisorHandle;

use args::Args;
use config::{set_config, supervisor_config};
use demo::Demo;
use script::{Cluster, Script};

type BoxError = Box<dyn StdError>;

/// Readers and writers of the steady load.
const READERS: usize = 12;
const WRITERS: usize = 3;
/// How often the set reads its members' roles, lag and positions.
const TOPOLOGY_INTERVAL: Duration = Duration::from_millis(250);

#[actix::main]
async fn main() -> Result<(), BoxError> {
    let args = args::from_command_line();
    if std::env::var_os("RUST_LOG").is_none() {
        // The status lines tell the story; the library's own logs on request.
        std::env::set_var("RUST_LOG", "poolwarden=error");
    }
    common::init_tracing();
    match args.primary.clone() {
        None => run_simulated(&args).await,
        Some(primary) => real_pg::run(&args, primary).await,
    }
}

/// The simulated run: four servers, the steady load, the scripted outages, the summary.
async fn run_simulated(args: &Args) -> Result<(), BoxError> {
    let total = Duration::from_secs_f64(args.seconds.unwrap_or(24.0));
    let script = Script::over(total);
    let Cluster {
        sim,
        primary,
        replicas,
        servers,
        labels,
        keys,
    } = Cluster::new()?;

    println!(
        "failover demo on the simulated backend: primary db1, replicas db2 db3 db4; \
         {READERS} readers, {WRITERS} writers, {:.0} s, strategy {:?}",
        total.as_secs_f64(),
        args.strategy
    );
    script.print();

    // Set up: a supervisor, the replica set, then the readers, the writers and the monitor.
    let sup = SupervisorHandle::start(sim.clone(), supervisor_config())?;
    let _dashboard = dashboard::start(args, &sup)?;
    let set = sup.replica_set(set_config(args, primary, replicas)).await?;
    let demo = Demo::start(&sup, &set, labels).await?;

    // Run the load, with status lines every second, while the script kills and heals.
    let interrupted = demo.run(script.play(demo.clone(), servers)).await;
    demo.stop().await;

    // The summary: everything in it was measured during the run.
    let lines = summary::scripted(&demo, interrupted, keys);
    demo.print_summary(&lines);
    demo.shutdown(&sup).await
}
