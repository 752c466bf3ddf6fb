//! The process-wide manager: one supervisor per backend type, installed once, reachable
//! from anywhere through [`SupervisorHandle::global`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::actor::Supervisor;
use super::embedded::EmbeddedSupervisor;
use super::handle::SupervisorHandle;
use super::settings::Settings;
use crate::backends::Backend;
use crate::error::Error;

/// Installed supervisors by backend type. Each is an [`EmbeddedSupervisor`] (a thread of its
/// own), kept for the life of the process.
fn installed() -> &'static Mutex<HashMap<TypeId, Box<dyn Any + Send>>> {
    static INSTALLED: OnceLock<Mutex<HashMap<TypeId, Box<dyn Any + Send>>>> = OnceLock::new();
    INSTALLED.get_or_init(Default::default)
}

fn lookup<B: Backend>(map: &HashMap<TypeId, Box<dyn Any + Send>>) -> Option<SupervisorHandle<B>> {
    map.get(&TypeId::of::<B>())
        .and_then(|s| s.downcast_ref::<EmbeddedSupervisor<B>>())
        .map(|s| s.handle().clone())
}

/// The runtime the process-wide supervisors' own connects (warm-up, refills) run on. Their
/// callers come from any runtime, each of which may be a current-thread runtime that runs
/// only while its thread is inside `block_on`, or may end; so these connects get a
/// runtime of their own, on a thread of its own, that lives as long as the process.
fn background_runtime() -> Result<tokio::runtime::Handle, Error> {
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    if let Some(handle) = RUNTIME.get() {
        return Ok(handle.clone());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            crate::error::ConfigError::new("supervisor", format!("cannot start its runtime: {e}"))
        })?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("poolwarden-connects".into())
        // Drives the runtime's tasks for the life of the process.
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .map_err(|e| {
            crate::error::ConfigError::new("supervisor", format!("cannot start its thread: {e}"))
        })?;
    Ok(RUNTIME.get_or_init(|| handle).clone())
}

/// Start `B`'s process-wide supervisor from `settings` unless one is installed.
pub(super) fn install<B: Backend>(
    backend: impl FnOnce() -> B,
    settings: impl FnOnce() -> Result<Settings, Error>,
    again_is_error: bool,
) -> Result<SupervisorHandle<B>, Error> {
    // Held while starting, so two first uses at once start one supervisor. Starting waits
    // only for the new thread to create its actor.
    let mut map = installed().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = lookup::<B>(&map) {
        return if again_is_error {
            Err(Error::AlreadyInstalled {
                backend: std::any::type_name::<B>(),
            })
        } else {
            Ok(handle)
        };
    }
    let settings = settings()?;
    let supervisor =
        Supervisor::from_settings(backend(), &settings)?.with_home(Some(background_runtime()?));
    let embedded = EmbeddedSupervisor::run(supervisor)?;
    let handle = embedded.handle().clone();
    map.insert(TypeId::of::<B>(), Box::new(embedded));
    Ok(handle)
}

impl<B: Backend> SupervisorHandle<B> {
    /// Start a supervisor on the current actix arbiter with `settings`' config and its
    /// named pools registered (each created on its first lookup).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{Settings, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let settings = Settings::from_toml_str("[pools.orders]\nurl = \"sim://db1/orders\"")?;
    /// let sup = SupervisorHandle::start_with_settings(SimBackend::default(), &settings)?;
    /// let pool = sup.lookup("orders").await?;
    /// drop(pool.acquire().await?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn start_with_settings(backend: B, settings: &Settings) -> Result<Self, Error> {
        use actix::Actor;
        Ok(Self::from(
            Supervisor::from_settings(backend, settings)?.start(),
        ))
    }

    /// Install the process-wide supervisor for backend type `B`: it runs on a thread of its
    /// own for the rest of the process, so it is reachable from any thread, actix arbiter or
    /// tokio runtime through [`global`](Self::global). Install it at start-up, before the
    /// first `global()`; installing for the same backend type a second time (or after a
    /// `global()` started the default) is [`Error::AlreadyInstalled`]. Each backend type
    /// has its own; [`AnyBackend`](crate::backends::any::AnyBackend) serves every kind of
    /// database from one.
    ///
    /// [`shutdown`](Self::shutdown) closes its pools; the supervisor then refuses new work
    /// (`ShuttingDown`) and stays installed.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{Error, Settings, SupervisorHandle};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let settings = Settings::from_toml_str(r#"
    ///     [supervisor]
    ///     max_pools = 16
    ///     [pools.orders]
    ///     url = "sim://db1/orders"
    /// "#)?;
    /// SupervisorHandle::install_global(SimBackend::new(1), settings.clone())?;
    /// assert!(matches!(
    ///     SupervisorHandle::install_global(SimBackend::new(2), settings),
    ///     Err(Error::AlreadyInstalled { .. })
    /// ));
    ///
    /// // Anywhere else in the program:
    /// let pool = SupervisorHandle::<SimBackend>::global()?.lookup("orders").await?;
    /// drop(pool.acquire().await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn install_global(backend: B, settings: Settings) -> Result<Self, Error> {
        install(|| backend, || Ok(settings), true)
    }

    /// The process-wide supervisor for backend type `B`: the one
    /// [`install_global`](Self::install_global) installed, else one started now with
    /// `B::default()` and [`Settings::from_env`] (so a program that installs nothing is
    /// configured by `POOLWARDEN_*` variables). Cheap after the first call: a lock and a
    /// clone.
    ///
    /// ```
    /// use poolwarden::backends::any::AnyBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorHandle};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sup = SupervisorHandle::<AnyBackend>::global()?;
    /// let pool = sup.pool(ConnectionConfig::parse("sim://primary/app")?).await?;
    /// drop(pool.acquire().await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn global() -> Result<Self, Error>
    where
        B: Default,
    {
        install(B::default, || Ok(Settings::from_env()?), false)
    }
}
