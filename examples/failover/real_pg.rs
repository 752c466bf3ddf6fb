//! The run against real PostgreSQL servers: the same load, no injected faults (stopping
//! servers and promoting a replica are the operator's to do), and a summary of what was seen.

use crate::args::Args;
use crate::BoxError;

/// Runs the load against the primary and replicas given (`--primary`, `--replica` or the
/// environment) until Ctrl-C or `--seconds`, then prints the summary.
#[cfg(feature = "postgres")]
pub async fn run(args: &Args, primary_url: String) -> Result<(), BoxError> {
    use std::collections::HashMap;
    use std::time::Duration;

    use poolwarden::backends::postgres::PostgresBackend;
    use poolwarden::{ConnectionConfig, PoolKey, SupervisorHandle};
    use tokio::time::Instant;

    use crate::config::{set_config, supervisor_config};
    use crate::demo::Demo;
    use crate::workload::Workload;
    use crate::{summary, READERS, WRITERS};

    let primary = ConnectionConfig::parse(&primary_url)?;
    let replicas: Vec<ConnectionConfig> = args
        .replicas
        .iter()
        .map(|u| ConnectionConfig::parse(u))
        .collect::<Result<_, _>>()?;
    for c in std::iter::once(&primary).chain(&replicas) {
        if c.backend != "postgres" {
            return Err(format!(
                "{c}: only postgres:// URLs are supported by this demo (got `{}`)",
                c.backend
            )
            .into());
        }
    }
    let mut labels: HashMap<PoolKey, String> = HashMap::new();
    labels.insert(PoolKey::of(&primary), primary.primary_host());
    for r in &replicas {
        labels.insert(PoolKey::of(r), r.primary_host());
    }
    let sup = SupervisorHandle::start(PostgresBackend::new(), supervisor_config())?;
    let _dashboard = crate::dashboard::start(args, &sup)?;
    let set = sup.replica_set(set_config(args, primary, replicas)).await?;
    {
        let conn = set.write().await?;
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS poolwarden_failover \
             (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    }
    // Until every replica has replayed the table, reading it there fails: wait (5 s at
    // most) until a full round of reads succeeds, before any reader starts counting.
    let (mut in_a_row, deadline) = (0, Instant::now() + Duration::from_secs(5));
    while in_a_row < labels.len() && Instant::now() < deadline {
        let ok = match set.read().await {
            Ok(mut conn) => PostgresBackend::read(&mut conn).await.is_ok(),
            Err(_) => false,
        };
        in_a_row = if ok { in_a_row + 1 } else { 0 };
        if !ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "failover demo against real servers: {} member(s), {READERS} readers, {WRITERS} \
         writers, strategy {:?}; no faults are injected. {}",
        labels.len(),
        args.strategy,
        match args.seconds {
            Some(s) => format!("Running for {s:.0} s (or until Ctrl-C)."),
            None => "Running until Ctrl-C.".into(),
        }
    );
    let demo = Demo::start(&sup, &set, labels).await?;
    let seconds = args.seconds;
    let interrupted = demo
        .run(async move {
            match seconds {
                Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
                None => std::future::pending().await,
            }
        })
        .await;
    demo.stop().await;

    let lines = summary::observed(&demo, interrupted);
    demo.print_summary(&lines);
    demo.shutdown(&sup).await
}

#[cfg(not(feature = "postgres"))]
pub async fn run(_: &Args, _: String) -> Result<(), BoxError> {
    Err("real servers need the `postgres` feature (cargo run --features postgres --example failover)".into())
}
