//! `--dashboard`: the live page on 127.0.0.1 (a free port) for as long as the demo runs.

use poolwarden::{Backend, SupervisorHandle};

use crate::args::Args;
use crate::BoxError;

/// What keeps the server running; dropping it stops it.
#[cfg(feature = "dashboard")]
pub type Running = poolwarden::dashboard::DashboardServer;
#[cfg(not(feature = "dashboard"))]
pub type Running = ();

/// Start the dashboard when `--dashboard` was given, and print where it is.
#[cfg(feature = "dashboard")]
pub fn start<B: Backend>(
    args: &Args,
    sup: &SupervisorHandle<B>,
) -> Result<Option<Running>, BoxError> {
    if !args.dashboard {
        return Ok(None);
    }
    let server = poolwarden::dashboard::serve(sup.clone(), "127.0.0.1:0")?;
    println!(
        "dashboard: {} (open it in a browser; it lives as long as the demo)",
        server.url()
    );
    Ok(Some(server))
}

#[cfg(not(feature = "dashboard"))]
pub fn start<B: Backend>(
    args: &Args,
    _: &SupervisorHandle<B>,
) -> Result<Option<Running>, BoxError> {
    if args.dashboard {
        return Err("--dashboard needs the crate's `dashboard` feature: \
             cargo run --example failover --features dashboard -- --dashboard"
            .into());
    }
    Ok(None)
}
