//! The supervisor actor: one pool actor per pool key (kept in `registry.rs`), named
//! pools, replica sets, event fan-out, health checks and shutdown.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::config::SupervisorConfig;
use super::events::{BreakerTransition, Subscribe, Subscribers};
use super::messages::GetPoolWithHooks;
use super::messages::{
    Acquire, GetPool, GetStats, Lookup, PoolRef, ReapIdle, Register, RevivePool,
};
use super::registry::{Entry, Registration, Registry};
use super::stats::SupervisorStats;
use crate::backends::Backend;
use crate::budget::Ledger;
use crate::connection::ConnectionConfig;
use crate::error::{ConfigError, Error};
use crate::key::PoolKey;
use crate::pool::actor::RestartPolicy;
use crate::pool::config::PoolConfig;
use crate::pool::credential::{CredentialsProvider, Presented};
use crate::pool::factory::PoolFactory;
use crate::pool::handle::PoolHandle;
use crate::pool::health::EventSink;
use crate::pool::home::Home;
use crate::pool::hooks::Hooks;
use crate::pool::messages::Revive;
use crate::replica_set::actor::{ReplicaSetActor, RoleSink};
use crate::replica_set::handle::ReplicaSetHandle;
use crate::replica_set::messages::RoleChanged;
use crate::timetable::Timetable;

/// Owns one [`PoolActor`](crate::PoolActor) per pool key.
///
/// Start one explicitly with [`Supervisor::new`] and `.start()`, or, for a backend with a
/// `Default`, use the one per actix System (`Supervisor::<B>::from_registry()`, an actix
/// `SystemService`). From plain tokio code use [`SupervisorHandle`](crate::SupervisorHandle).
pub struct Supervisor<B: Backend> {
    backend: Arc<B>,
    config: SupervisorConfig,
    registry: Registry<B>,
    accepting: bool,
    subscribers: Subscribers<BreakerTransition>,
    /// Where every pool's breaker transitions go (one closure for them all).
    events: EventSink,
    role_subscribers: Subscribers<RoleChanged>,
    sets: HashMap<String, SetEntry<B>>,
    home: Arc<Home>,
    /// The connection budget every pool shares (`src/budget/`), if one is set.
    budget: Option<Arc<Ledger>>,
    /// When each pool's maintenance is due: one timer for them all (`upkeep.rs`).
    timetable: Arc<Timetable>,
}

pub(super) struct SetEntry<B: Backend> {
    pub(super) addr: Addr<ReplicaSetActor<B>>,
    pub(super) handle: ReplicaSetHandle<B>,
}

/// How a request for a pool is answered.
enum Resolution<B: Backend> {
    /// At once.
    Ready(PoolHandle<B>),
    /// Once one connect has verified `presented`, a credential other than the pool's
    /// (see `pool/credential.rs`).
    Verify {
        entry: Entry<B>,
        presented: Box<Presented>,
    },
}

impl<B: Backend> Supervisor<B> {
    /// A supervisor for `backend`. Fails if `config` is invalid, naming the field.
    pub fn new(backend: B, config: SupervisorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let subscribers = Subscribers::new("breaker");
        Ok(Self {
            backend: Arc::new(backend),
            registry: Registry::default(),
            accepting: true,
            events: Self::event_sink(&subscribers),
            subscribers,
            role_subscribers: Subscribers::new("topology"),
            sets: HashMap::new(),
            home: Arc::default(),
            budget: Ledger::new(
                config.max_connections_per_host,
                config.max_total_connections,
            ),
            timetable: Arc::default(),
            config,
        })
    }

    /// Run the pools' own connects (warm-up, refills, probes with nothing idle) on
    /// `runtime`, where the callers are, instead of the supervisor's thread: see
    /// `pool/home.rs`. Without it, the runtime of the first acquire is used.
    pub(crate) fn with_home(mut self, runtime: Option<tokio::runtime::Handle>) -> Self {
        self.home = Arc::new(Home::new(runtime));
        self
    }

    /// The pool for `connection`: created if it does not run; if it runs, at once when
    /// the credential presented (`connection`'s password, or `credentials`) is the
    /// pool's, else after verifying it.
    fn get_or_create(
        &mut self,
        connection: ConnectionConfig,
        pool: Option<PoolConfig>,
        credentials: Option<Arc<dyn CredentialsProvider>>,
    ) -> Result<Resolution<B>, Error> {
        self.get_or_create_hooked(connection, pool, credentials, None, None)
    }

    /// [`get_or_create`](Self::get_or_create), the pool created with `hooks` when given;
    /// a running pool is answered only if it runs with the same hooks.
    fn get_or_create_hooked(
        &mut self,
        connection: ConnectionConfig,
        pool: Option<PoolConfig>,
        credentials: Option<Arc<dyn CredentialsProvider>>,
        hooks: Option<Hooks<B::Connection>>,
        name: Option<&str>,
    ) -> Result<Resolution<B>, Error> {
        if !self.accepting {
            return Err(Error::ShuttingDown);
        }
        connection.validate()?;
        // Checked whether or not the key's pool runs: settings refused for a new pool are
        // refused for a running one too, not ignored because it keeps its own.
        if let Some(pool) = &pool {
            pool.validate()?;
        }
        let key = PoolKey::of(&connection);
        if let Some(entry) = self.registry.entry(&key) {
            if hooks.as_ref().is_some_and(|h| !entry.shared.runs_hooks(h)) {
                return Err(ConfigError::new(
                    "hooks",
                    format!("pool {key} already runs with other hooks; it keeps them"),
                )
                .into());
            }
            let presented = Presented::new(connection, credentials);
            return Ok(match entry.shared.credential_for(&presented) {
                Some(version) => Resolution::Ready(entry.handle_for(version)),
                None => Resolution::Verify {
                    entry: entry.clone(),
                    presented: Box::new(presented),
                },
            });
        }
        let pool = pool.unwrap_or_else(|| self.config.default_pool.clone());
        let mut factory = self.factory();
        if let Some(hooks) = hooks {
            factory.hooks = hooks;
        }
        // Labelled by the name it is created for (`Register`, or a named pool recreated
        // after an eviction), else by a name already registered for its key.
        factory.name = name.map(str::to_string).or_else(|| {
            self.registry
                .names()
                .find(|(_, reg)| PoolKey::of(&reg.connection) == key)
                .map(|(n, _)| n.clone())
        });
        self.registry
            .create(
                key,
                connection,
                pool,
                credentials,
                self.config.max_pools,
                &factory,
            )
            .map(Resolution::Ready)
    }

    fn resolve(&mut self, pool: PoolRef) -> Result<Resolution<B>, Error> {
        // Checked first: once shut down the map is empty, and a key would be "unknown".
        if !self.accepting {
            return Err(Error::ShuttingDown);
        }
        match pool {
            PoolRef::Key(key) => self
                .registry
                .get(&key)
                .map(Resolution::Ready)
                .ok_or(Error::UnknownKey { key }),
            PoolRef::Name(name) => {
                let reg = self
                    .registry
                    .name(&name)
                    .ok_or_else(|| Error::UnknownPool { name: name.clone() })?;
                // A name presents no credential: it stands for its pool, whichever
                // credential that has now (a rotation updates the registration too).
                if let Some(handle) = self.registry.get(&PoolKey::of(&reg.connection)) {
                    return Ok(Resolution::Ready(handle));
                }
                match self.get_or_create_hooked(
                    reg.connection,
                    reg.pool,
                    reg.credentials,
                    None,
                    Some(&name),
                )? {
                    Resolution::Ready(handle) => Ok(Resolution::Ready(PoolHandle {
                        credential: None,
                        ..handle
                    })),
                    verify => Ok(verify),
                }
            }
            PoolRef::Config(connection) => self.get_or_create(*connection, None, None),
        }
    }

    /// The handle a resolution leads to: at once, or once the presented credential is
    /// verified. Verifying runs as a future of this actor, which meanwhile goes on
    /// handling messages; authenticated, the registered names of the pool take up the
    /// new credential.
    fn handle_of(
        &mut self,
        resolution: Result<Resolution<B>, Error>,
    ) -> ResponseActFuture<Self, Result<PoolHandle<B>, Error>> {
        match resolution {
            Err(e) => Box::pin(fut::ready(Err(e))),
            Ok(Resolution::Ready(handle)) => Box::pin(fut::ready(Ok(handle))),
            Ok(Resolution::Verify { entry, presented }) => {
                let key = entry.shared.key;
                let verify = async move {
                    let version = entry.shared.verify_credential(*presented).await;
                    // Its connection may have joined the idle ones: maintenance watches it.
                    entry.shared.observe.bell().ring();
                    Ok(entry.handle_for(version?))
                };
                Box::pin(verify.into_actor(self).map(move |result, act, _| {
                    if result.is_ok() {
                        act.registry.credential_changed(key);
                    }
                    result
                }))
            }
        }
    }

    pub(super) fn factory(&self) -> PoolFactory<B> {
        PoolFactory {
            backend: Arc::clone(&self.backend),
            events: Arc::clone(&self.events),
            home: Arc::clone(&self.home),
            hooks: Hooks::default(),
            budget: self.budget.clone(),
            name: None,
            timetable: Arc::clone(&self.timetable),
            policy: RestartPolicy {
                max_restarts: self.config.max_restarts,
                window: self.config.restart_window,
            },
        }
    }

    /// Where a pool's breaker transitions go: every subscriber's bounded mailbox.
    fn event_sink(subscribers: &Subscribers<BreakerTransition>) -> EventSink {
        let subscribers = subscribers.clone();
        Arc::new(move |key, change| {
            subscribers.publish(BreakerTransition {
                key,
                from: change.from,
                to: change.to,
                reason: change.reason,
                at: change.at,
            })
        })
    }

    /// Where a replica set's role changes go.
    pub(super) fn role_sink(&self) -> RoleSink {
        let subscribers = self.role_subscribers.clone();
        Arc::new(move |event| subscribers.publish(event))
    }

    /// The pools of every replica set's members (owned by the set actors, not by
    /// `self.pools`, so never evicted or reaped on their own), for stats, health and
    /// shutdown.
    pub(super) fn member_entries(&self) -> Vec<Entry<B>> {
        let mut entries = Vec::new();
        for set in self.sets.values() {
            for m in set.handle.shared.members.read().iter() {
                if let Some(addr) = m.pool_actor() {
                    entries.push(Entry {
                        addr,
                        shared: Arc::clone(&m.pool),
                    });
                }
            }
        }
        entries
    }

    /// Every pool: those keyed here and the replica sets' members.
    /// The pools and names, for the handlers in other files.
    pub(super) fn accepting(&self) -> bool {
        self.accepting
    }

    /// Refuse every request from now on (shutdown).
    pub(super) fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// The replica sets by name, for the handlers in `sets.rs`.
    pub(super) fn sets_mut(&mut self) -> &mut HashMap<String, SetEntry<B>> {
        &mut self.sets
    }

    pub(super) fn role_subscribers_mut(&mut self) -> &mut Subscribers<RoleChanged> {
        &mut self.role_subscribers
    }

    pub(super) fn config(&self) -> &SupervisorConfig {
        &self.config
    }

    pub(super) fn timetable(&self) -> &Arc<Timetable> {
        &self.timetable
    }

    pub(super) fn registry(&self) -> &Registry<B> {
        &self.registry
    }

    pub(super) fn registry_mut(&mut self) -> &mut Registry<B> {
        &mut self.registry
    }

    pub(super) fn all_pools(&self) -> Vec<Entry<B>> {
        let mut entries = self.member_entries();
        entries.extend(self.registry.entries().cloned());
        entries
    }

    fn stats(&self) -> SupervisorStats {
        let mut per_pool: Vec<_> = self.all_pools().iter().map(|e| e.shared.stats()).collect();
        per_pool.sort_by_key(|s| s.key);
        let tally = self.registry.tally();
        SupervisorStats {
            pools: per_pool.len(),
            pools_created: tally.created,
            pools_evicted: tally.evicted,
            pools_destroyed: tally.destroyed,
            connections_served: per_pool.iter().map(|s| s.served).sum(),
            idle: per_pool.iter().map(|s| s.idle).sum(),
            in_use: per_pool.iter().map(|s| s.in_use).sum(),
            total: per_pool.iter().map(|s| s.live).sum(),
            waiters: per_pool.iter().map(|s| s.waiters).sum(),
            budget: self
                .budget
                .as_ref()
                .map(|ledger| ledger.stats())
                .unwrap_or_default(),
            per_pool,
        }
    }
}

impl<B: Backend + Default> Default for Supervisor<B> {
    fn default() -> Self {
        Self::new(B::default(), SupervisorConfig::default()).expect("the default config is valid")
    }
}

impl<B: Backend> Supervised for Supervisor<B> {}

impl<B: Backend + Default> SystemService for Supervisor<B> {}

impl<B: Backend> Handler<GetPool<B>> for Supervisor<B> {
    type Result = ResponseActFuture<Self, Result<PoolHandle<B>, Error>>;
    fn handle(&mut self, msg: GetPool<B>, _: &mut Self::Context) -> Self::Result {
        let resolution = self.get_or_create(msg.connection, msg.pool, msg.credentials);
        self.handle_of(resolution)
    }
}

impl<B: Backend> Handler<Register<B>> for Supervisor<B> {
    type Result = ResponseActFuture<Self, Result<PoolHandle<B>, Error>>;
    fn handle(&mut self, msg: Register<B>, _: &mut Self::Context) -> Self::Result {
        let registration = Registration {
            connection: msg.connection.clone(),
            pool: msg.pool.clone(),
            credentials: msg.credentials.clone(),
        };
        let resolution = self.get_or_create_hooked(
            msg.connection,
            msg.pool,
            msg.credentials,
            None,
            Some(&msg.name),
        );
        let name = msg.name;
        // Registered once the pool is there (its credential verified when it differed).
        Box::pin(self.handle_of(resolution).map(move |result, act, _| {
            if result.is_ok() {
                act.registry.register(name, registration);
            }
            result
        }))
    }
}

impl<B: Backend> Handler<Lookup<B>> for Supervisor<B> {
    type Result = ResponseActFuture<Self, Result<PoolHandle<B>, Error>>;
    fn handle(&mut self, msg: Lookup<B>, _: &mut Self::Context) -> Self::Result {
        let resolution = self.resolve(msg.pool);
        self.handle_of(resolution)
    }
}

impl<B: Backend> Handler<Acquire<B>> for Supervisor<B> {
    type Result = ResponseActFuture<Self, <Acquire<B> as Message>::Result>;
    fn handle(&mut self, msg: Acquire<B>, _: &mut Self::Context) -> Self::Result {
        let resolution = self.resolve(msg.pool);
        let timeout = msg.timeout;
        Box::pin(self.handle_of(resolution).then(move |handle, _, _| {
            fut::wrap_future(async move {
                // This runs on the supervisor's thread, not the caller's: the pool must
                // not learn this runtime as the callers' (`pool/home.rs`).
                handle?.acquire_elsewhere(timeout).await
            })
        }))
    }
}

impl<B: Backend> Handler<GetStats> for Supervisor<B> {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl<B: Backend> Handler<ReapIdle> for Supervisor<B> {
    type Result = MessageResult<ReapIdle>;
    fn handle(&mut self, msg: ReapIdle, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.registry.reap(msg.older_than))
    }
}

impl<B: Backend> Handler<Subscribe> for Supervisor<B> {
    type Result = ();
    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) {
        self.subscribers.add(msg.0);
    }
}

impl<B: Backend> Handler<RevivePool> for Supervisor<B> {
    type Result = ResponseActFuture<Self, Result<bool, Error>>;
    fn handle(&mut self, msg: RevivePool, _: &mut Self::Context) -> Self::Result {
        let resolution = self.resolve(msg.pool);
        Box::pin(self.handle_of(resolution).then(|handle, _, _| {
            fut::wrap_future(async move {
                let handle = handle?;
                let addr = handle
                    .actor()
                    .ok_or(Error::PoolClosed { key: handle.key() })?;
                Ok(addr.send(Revive).await?)
            })
        }))
    }
}

impl<B: Backend> Handler<GetPoolWithHooks<B>> for Supervisor<B> {
    type Result = ResponseActFuture<Self, Result<PoolHandle<B>, Error>>;
    fn handle(&mut self, msg: GetPoolWithHooks<B>, _: &mut Self::Context) -> Self::Result {
        let resolution =
            self.get_or_create_hooked(msg.connection, msg.pool, None, Some(msg.hooks), None);
        self.handle_of(resolution)
    }
}
