//! [`EmbeddedSupervisor`]: a supervisor on a thread of its own, for tokio programs with no
//! actix System.

use std::time::Duration;

use actix::prelude::*;

use super::actor::Supervisor;
use super::config::SupervisorConfig;
use super::handle::SupervisorHandle;
use super::stats::ShutdownReport;
use crate::backends::Backend;
use crate::error::{ConfigError, Error};

/// A supervisor running on a thread of its own, for tokio programs with no actix System.
///
/// Acquire and release run in the caller's tasks (they never cross to this thread);
/// only lifecycle work and management messages do.
///
/// ```
/// use poolwarden::backends::sim::SimBackend;
/// use poolwarden::{ConnectionConfig, EmbeddedSupervisor, SupervisorConfig};
/// use std::time::Duration;
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let sup = EmbeddedSupervisor::spawn(SimBackend::default(), SupervisorConfig::default())?;
///     let pool = sup.handle().pool(ConnectionConfig::sim("jobs")).await?;
///     pool.acquire().await?.query("SELECT 1").await?;
///     let report = sup.shutdown(Duration::from_secs(5)).await?;
///     assert_eq!(report.pools_closed, 1);
///     Ok(())
/// }
/// ```
pub struct EmbeddedSupervisor<B: Backend> {
    handle: SupervisorHandle<B>,
    system: System,
    exited: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl<B: Backend> EmbeddedSupervisor<B> {
    /// Start an actix System on a new thread named `poolwarden` and a supervisor in it.
    pub fn spawn(backend: B, config: SupervisorConfig) -> Result<Self, ConfigError> {
        // Called from the application's runtime (as is usual), the pools' own connects
        // run there rather than on the supervisor's thread.
        let supervisor =
            Supervisor::new(backend, config)?.with_home(tokio::runtime::Handle::try_current().ok());
        Self::run(supervisor)
    }

    /// Run `supervisor` on a thread of its own.
    pub(super) fn run(supervisor: Supervisor<B>) -> Result<Self, ConfigError> {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (exit_tx, exited) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("poolwarden".into())
            .spawn(move || {
                let system = System::new();
                system.block_on(async move {
                    let addr = supervisor.start();
                    let _ = started_tx.send((addr, System::current()));
                });
                let _ = system.run();
                let _ = exit_tx.send(());
            })
            .map_err(|e| ConfigError::new("supervisor", format!("cannot start its thread: {e}")))?;
        let (addr, system) = started_rx
            .recv()
            .map_err(|_| ConfigError::new("supervisor", "its thread exited during start-up"))?;
        Ok(Self {
            handle: SupervisorHandle::from(addr),
            system,
            exited: Some(exited),
        })
    }

    /// A handle to send the supervisor messages.
    pub fn handle(&self) -> &SupervisorHandle<B> {
        &self.handle
    }

    /// Shut the supervisor down (see [`SupervisorHandle::shutdown`]), then stop its thread.
    ///
    /// # Cancel safety
    ///
    /// Not meant to be cancelled: `self` is consumed, so a dropped future stops the
    /// supervisor's System at once (see the `Drop` impl) — pools close without waiting
    /// for checked-out connections.
    pub async fn shutdown(mut self, deadline: Duration) -> Result<ShutdownReport, Error> {
        let report = self.handle.shutdown(deadline).await;
        self.system.stop();
        if let Some(exited) = self.exited.take() {
            let _ = exited.await;
        }
        report
    }
}

/// Dropped without [`shutdown`](EmbeddedSupervisor::shutdown), it stops the System at
/// once: pools close without waiting for checked-out connections.
impl<B: Backend> Drop for EmbeddedSupervisor<B> {
    fn drop(&mut self) {
        self.system.stop();
    }
}
