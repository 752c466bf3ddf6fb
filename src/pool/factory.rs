//! Builds pools: shared state plus a pool actor under `actix::Supervisor`, with the
//! supervisor's event sink, home runtime and restart policy. Used by the supervisor and
//! by replica sets, so a pool is made one way wherever it lives.

use std::sync::Arc;

use actix::Addr;

use super::actor::{PoolActor, RestartPolicy};
use super::config::PoolConfig;
use super::credential::CredentialsProvider;
use super::health::EventSink;
use super::home::Home;
use super::hooks::Hooks;
use super::shared::PoolShared;
use crate::backends::Backend;
use crate::budget::{endpoint_of, Ledger};
use crate::connection::ConnectionConfig;
use crate::key::PoolKey;
use crate::timetable::Timetable;

/// Builds pools: shared state plus a pool actor under `actix::Supervisor`, with the
/// supervisor's event sink and restart policy. Used by the supervisor and replica sets.
pub(crate) struct PoolFactory<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) events: EventSink,
    pub(crate) policy: RestartPolicy,
    pub(crate) home: Arc<Home>,
    /// The hooks of the pools it makes (none by default).
    pub(crate) hooks: Hooks<B::Connection>,
    /// The supervisor's connection budget, shared by every pool it makes.
    pub(crate) budget: Option<Arc<Ledger>>,
    /// The name the pools it makes are labelled with in metrics and traces (a
    /// registered name; a replica-set member's `<set>/<host:port>`); `None`: by key.
    pub(crate) name: Option<String>,
    /// The supervisor's timetable, where the pools it makes are tended.
    pub(crate) timetable: Arc<Timetable>,
}

impl<B: Backend> Clone for PoolFactory<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            events: Arc::clone(&self.events),
            policy: self.policy,
            home: Arc::clone(&self.home),
            hooks: self.hooks.clone(),
            budget: self.budget.clone(),
            name: self.name.clone(),
            timetable: Arc::clone(&self.timetable),
        }
    }
}

impl<B: Backend> PoolFactory<B> {
    /// Start a pool on the current arbiter. The caller holds the only strong address.
    /// `key` is `connection`'s, computed once by the caller.
    pub(crate) fn spawn(
        &self,
        key: PoolKey,
        connection: ConnectionConfig,
        config: PoolConfig,
    ) -> (Addr<PoolActor<B>>, Arc<PoolShared<B>>) {
        self.spawn_with_credentials(key, connection, config, None)
    }

    /// [`spawn`](Self::spawn), the pool asking `provider` for the password at each
    /// connect when there is one.
    pub(crate) fn spawn_with_credentials(
        &self,
        key: PoolKey,
        connection: ConnectionConfig,
        config: PoolConfig,
        provider: Option<Arc<dyn CredentialsProvider>>,
    ) -> (Addr<PoolActor<B>>, Arc<PoolShared<B>>) {
        debug_assert_eq!(key, PoolKey::of(&connection));
        let budget = self
            .budget
            .as_ref()
            .and_then(|ledger| ledger.pool_budget(key, endpoint_of(&connection)));
        let shared = Arc::new(
            PoolShared::new(
                key,
                Arc::clone(&self.backend),
                connection,
                config,
                Some(Arc::clone(&self.events)),
                Arc::clone(&self.home),
                provider,
            )
            .with_hooks(self.hooks.clone())
            .with_budget(budget)
            .with_name(self.name.as_deref()),
        );
        shared.bind_budget();
        let for_actor = Arc::clone(&shared);
        let policy = self.policy;
        let timetable = Arc::clone(&self.timetable);
        let addr = actix::Supervisor::start(move |_| PoolActor::new(for_actor, policy, timetable));
        tracing::debug!(pool = %key, backend = %shared.connection.backend, "pool created");
        (addr, shared)
    }
}
