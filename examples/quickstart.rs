//! The README's first example: the process-wide manager over `AnyBackend`, so one
//! supervisor serves whatever database the URL names — PostgreSQL, Redis, MySQL/MariaDB,
//! SQLite — or the simulated backend when no URL is given.
//!
//! ```text
//! cargo run --example quickstart                                   # simulated
//! DATABASE_URL=postgres://app:secret@127.0.0.1/app cargo run --example quickstart
//! POOLWARDEN_SUPERVISOR__DEFAULT_POOL__MAX_SIZE=4 cargo run --example quickstart
//! ```

use std::time::Duration;

use poolwarden::backends::any::{AnyBackend, AnyConnection};
use poolwarden::{ConnectionConfig, Settings, SupervisorHandle};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Once, at start-up: settings from POOLWARDEN_* variables (or a TOML file with
    // `Settings::load(Some(path))`); every bad value is an error naming its field.
    SupervisorHandle::install_global(AnyBackend::default(), Settings::from_env()?)?;

    // Anywhere else, from any thread or runtime: resolve a pool once, acquire often.
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sim://primary/app".into());
    let config = ConnectionConfig::parse(&url)?;
    println!("connecting to {config}"); // the password is never printed
    let sup = SupervisorHandle::<AnyBackend>::global()?;
    let pool = sup.pool(config).await?;

    for _ in 0..3 {
        let mut conn = pool.acquire().await?;
        ping(&mut conn).await?;
    } // each connection goes back to the pool when its guard drops

    let stats = pool.stats();
    println!(
        "{} connection(s) served {} acquires; health: {:?}",
        stats.created,
        stats.served,
        sup.health().await?.status
    );
    sup.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

/// One round trip on whichever kind of connection the URL gave.
async fn ping(conn: &mut AnyConnection) -> Result<(), Box<dyn std::error::Error>> {
    match conn {
        AnyConnection::Postgres(pg) => drop(pg.simple_query("SELECT 1").await?),
        AnyConnection::Redis(redis) => redis::cmd("PING").query_async::<()>(redis).await?,
        AnyConnection::Sim(sim) => drop(sim.query("SELECT 1").await?),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(db) => drop(db.query("SELECT 1", vec![]).await?),
        other => println!("connected ({})", other.kind()),
    }
    Ok(())
}
