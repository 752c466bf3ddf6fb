//! The supervisor actor: one pool actor per pool key, named pools, eviction at
//! `max_pools`, idle-pool reaping, health checks and shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use parking_lot::Mutex;

use super::pool::{PoolActor, PoolFactory, RestartPolicy};
use super::replica_set::{ReplicaSetActor, RoleSubscribers};
use crate::backend::Backend;
use crate::config::connection::ConnectionConfig;
use crate::config::pool::PoolConfig;
use crate::config::supervisor::SupervisorConfig;
use crate::error::{ConfigError, Error};
use crate::key::PoolKey;
use crate::lru::{self, Candidate};
use crate::messages::events::{BreakerTransition, Subscribe};
use crate::messages::pool::{Close, Probe, Revive};
use crate::messages::replica_set::{LookupReplicaSet, RegisterReplicaSet, SubscribeTopology};
use crate::messages::supervisor::{
    Acquire, GetPool, GetStats, HealthCheck, Lookup, PoolRef, ReapIdle, Register, RevivePool,
    Shutdown,
};
use crate::pool::core::{EventSink, PoolShared};
use crate::pool::handle::PoolHandle;
use crate::pool::home::Home;
use crate::replica_set::{MemberState, ReplicaSetHandle, SetShared};
use crate::router::Role;
use crate::stats::{HealthReport, HealthStatus, ShutdownReport, SupervisorStats};

struct Entry<B: Backend> {
    addr: Addr<PoolActor<B>>,
    shared: Arc<PoolShared<B>>,
}

impl<B: Backend> Entry<B> {
    fn handle(&self) -> PoolHandle<B> {
        PoolHandle {
            shared: Arc::clone(&self.shared),
            actor: self.addr.downgrade(),
        }
    }

    fn candidate(&self, key: PoolKey) -> Candidate<PoolKey> {
        Candidate {
            key,
            last_used: self.shared.last_used(),
            busy: self.shared.in_use() > 0,
        }
    }
}

#[derive(Clone)]
struct Registration {
    connection: ConnectionConfig,
    pool: Option<PoolConfig>,
}

/// Owns one [`PoolActor`] per pool key.
///
/// Start one explicitly with [`Supervisor::new`] and `.start()`, or, for a backend with a
/// `Default`, use the one per actix System (`Supervisor::<B>::from_registry()`, an actix
/// `SystemService`). From plain tokio code use [`SupervisorHandle`](crate::SupervisorHandle).
pub struct Supervisor<B: Backend> {
    backend: Arc<B>,
    config: SupervisorConfig,
    pools: HashMap<PoolKey, Entry<B>>,
    names: HashMap<String, Registration>,
    accepting: bool,
    created: u64,
    evicted: u64,
    destroyed: u64,
    subscribers: Arc<Mutex<Vec<Recipient<BreakerTransition>>>>,
    role_subscribers: RoleSubscribers,
    sets: HashMap<String, SetEntry<B>>,
    home: Arc<Home>,
}

struct SetEntry<B: Backend> {
    addr: Addr<ReplicaSetActor<B>>,
    handle: ReplicaSetHandle<B>,
}

impl<B: Backend> Supervisor<B> {
    /// A supervisor for `backend`. Fails if `config` is invalid, naming the field.
    pub fn new(backend: B, config: SupervisorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            backend: Arc::new(backend),
            config,
            pools: HashMap::new(),
            names: HashMap::new(),
            accepting: true,
            created: 0,
            evicted: 0,
            destroyed: 0,
            subscribers: Arc::default(),
            role_subscribers: Arc::default(),
            sets: HashMap::new(),
            home: Arc::default(),
        })
    }

    /// Run the pools' own connects (warm-up, refills, probes with nothing idle) on
    /// `runtime`, where the callers are, instead of the supervisor's thread: see
    /// `pool/home.rs`. Without it, the runtime of the first acquire is used.
    pub(crate) fn with_home(mut self, runtime: Option<tokio::runtime::Handle>) -> Self {
        self.home = Arc::new(Home::new(runtime));
        self
    }

    fn get_or_create(
        &mut self,
        connection: ConnectionConfig,
        pool: Option<PoolConfig>,
    ) -> Result<PoolHandle<B>, Error> {
        if !self.accepting {
            return Err(Error::ShuttingDown);
        }
        connection.validate()?;
        let key = PoolKey::of(&connection);
        if let Some(entry) = self.pools.get(&key) {
            return Ok(entry.handle());
        }
        let pool = pool.unwrap_or_else(|| self.config.default_pool.clone());
        pool.validate()?;
        if self.pools.len() >= self.config.max_pools {
            let victim = lru::least_recently_used(self.pools.iter().map(|(k, e)| e.candidate(*k)))
                .ok_or(Error::TooManyPools {
                    max_pools: self.config.max_pools,
                })?;
            tracing::info!(pool = %victim, "evicting least recently used pool");
            self.stop_pool(victim);
            self.evicted += 1;
        }
        let (addr, shared) = self.factory().spawn(connection, pool);
        let entry = Entry { addr, shared };
        let handle = entry.handle();
        self.pools.insert(key, entry);
        self.created += 1;
        Ok(handle)
    }

    fn resolve(&mut self, pool: PoolRef) -> Result<PoolHandle<B>, Error> {
        // Checked first: once shut down the map is empty, and a key would be "unknown".
        if !self.accepting {
            return Err(Error::ShuttingDown);
        }
        match pool {
            PoolRef::Key(key) => self
                .pools
                .get(&key)
                .map(Entry::handle)
                .ok_or(Error::UnknownKey { key }),
            PoolRef::Name(name) => {
                let reg = self
                    .names
                    .get(&name)
                    .cloned()
                    .ok_or(Error::UnknownPool { name })?;
                self.get_or_create(reg.connection, reg.pool)
            }
            PoolRef::Config(connection) => self.get_or_create(*connection, None),
        }
    }

    /// Close a pool and stop its actor (dropping the only strong address, so the actix
    /// supervisor does not restart it).
    fn stop_pool(&mut self, key: PoolKey) -> usize {
        let Some(entry) = self.pools.remove(&key) else {
            return 0;
        };
        let closed = entry.shared.close(false);
        entry.addr.do_send(Close);
        self.destroyed += 1;
        closed
    }

    fn reap(&mut self, older_than: Duration) -> Vec<PoolKey> {
        let now = Instant::now();
        let doomed = lru::unused_for(
            self.pools.iter().map(|(k, e)| e.candidate(*k)),
            now,
            older_than,
        );
        for key in &doomed {
            tracing::info!(pool = %key, "reaping idle pool");
            self.stop_pool(*key);
        }
        doomed
    }

    fn factory(&self) -> PoolFactory<B> {
        PoolFactory {
            backend: Arc::clone(&self.backend),
            events: self.event_sink(),
            home: Arc::clone(&self.home),
            policy: RestartPolicy {
                max_restarts: self.config.max_restarts,
                window: self.config.restart_window,
            },
        }
    }

    /// Where a pool's breaker transitions go: every subscriber's bounded mailbox.
    fn event_sink(&self) -> EventSink {
        let subscribers = Arc::clone(&self.subscribers);
        Arc::new(move |key, change| {
            let event = BreakerTransition {
                key,
                from: change.from,
                to: change.to,
                reason: change.reason,
                at: change.at,
            };
            subscribers.lock().retain(|r| match r.try_send(event.clone()) {
                Ok(()) => true,
                Err(SendError::Full(_)) => {
                    tracing::warn!(pool = %key, "subscriber mailbox full; breaker event dropped");
                    true
                }
                Err(SendError::Closed(_)) => false,
            });
        })
    }

    /// The pools of every replica set's members (owned by the set actors, not by
    /// `self.pools`, so never evicted or reaped on their own), for stats, health and
    /// shutdown.
    fn member_entries(&self) -> Vec<Entry<B>> {
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
    fn all_pools(&self) -> Vec<Entry<B>> {
        let mut entries = self.member_entries();
        entries.extend(self.pools.values().map(|e| Entry {
            addr: e.addr.clone(),
            shared: Arc::clone(&e.shared),
        }));
        entries
    }

    fn stats(&self) -> SupervisorStats {
        let mut per_pool: Vec<_> = self.all_pools().iter().map(|e| e.shared.stats()).collect();
        per_pool.sort_by_key(|s| s.key);
        SupervisorStats {
            pools: per_pool.len(),
            pools_created: self.created,
            pools_evicted: self.evicted,
            pools_destroyed: self.destroyed,
            connections_served: per_pool.iter().map(|s| s.served).sum(),
            idle: per_pool.iter().map(|s| s.idle).sum(),
            in_use: per_pool.iter().map(|s| s.in_use).sum(),
            total: per_pool.iter().map(|s| s.live).sum(),
            waiters: per_pool.iter().map(|s| s.waiters).sum(),
            per_pool,
        }
    }
}

impl<B: Backend + Default> Default for Supervisor<B> {
    fn default() -> Self {
        Self::new(B::default(), SupervisorConfig::default()).expect("the default config is valid")
    }
}

impl<B: Backend> Actor for Supervisor<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(idle) = self.config.pool_idle_timeout {
            ctx.run_interval(self.config.reap_interval, move |act, _| {
                act.reap(idle);
            });
        }
    }
}

impl<B: Backend> Supervised for Supervisor<B> {}

impl<B: Backend + Default> SystemService for Supervisor<B> {}

impl<B: Backend> Handler<GetPool<B>> for Supervisor<B> {
    type Result = Result<PoolHandle<B>, Error>;
    fn handle(&mut self, msg: GetPool<B>, _: &mut Self::Context) -> Self::Result {
        self.get_or_create(msg.connection, msg.pool)
    }
}

impl<B: Backend> Handler<Register<B>> for Supervisor<B> {
    type Result = Result<PoolHandle<B>, Error>;
    fn handle(&mut self, msg: Register<B>, _: &mut Self::Context) -> Self::Result {
        let handle = self.get_or_create(msg.connection.clone(), msg.pool.clone())?;
        self.names.insert(
            msg.name,
            Registration {
                connection: msg.connection,
                pool: msg.pool,
            },
        );
        Ok(handle)
    }
}

impl<B: Backend> Handler<Lookup<B>> for Supervisor<B> {
    type Result = Result<PoolHandle<B>, Error>;
    fn handle(&mut self, msg: Lookup<B>, _: &mut Self::Context) -> Self::Result {
        self.resolve(msg.pool)
    }
}

impl<B: Backend> Handler<Acquire<B>> for Supervisor<B> {
    type Result = ResponseFuture<<Acquire<B> as Message>::Result>;
    fn handle(&mut self, msg: Acquire<B>, _: &mut Self::Context) -> Self::Result {
        let handle = self.resolve(msg.pool);
        Box::pin(async move {
            // This runs on the supervisor's thread, not the caller's: go straight to the
            // pool so it does not learn this runtime as the callers' (`pool/home.rs`).
            let shared = handle?.shared;
            match msg.timeout {
                Some(t) => shared.acquire_within(t).await,
                None => shared.acquire().await,
            }
        })
    }
}

impl<B: Backend> Handler<GetStats> for Supervisor<B> {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl<B: Backend> Handler<HealthCheck> for Supervisor<B> {
    type Result = ResponseFuture<HealthReport>;
    fn handle(&mut self, _: HealthCheck, _: &mut Self::Context) -> Self::Result {
        let timeout = self.config.health_timeout;
        let probes: Vec<_> = self
            .all_pools()
            .into_iter()
            .map(|e| {
                let key = e.shared.key;
                let request = e.addr.send(Probe { timeout });
                async move {
                    // The probe bounds itself; this bounds a stuck mailbox.
                    let verdict = match tokio::time::timeout(timeout * 2, request).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => Err(format!("pool actor unavailable: {e}")),
                        Err(_) => Err(format!("no answer within {:?}", timeout * 2)),
                    };
                    (key, verdict)
                }
            })
            .collect();
        Box::pin(async move {
            let results = futures::future::join_all(probes).await;
            let total = results.len();
            let mut unhealthy: Vec<_> = results
                .into_iter()
                .filter_map(|(k, r)| r.err().map(|e| (k, e)))
                .collect();
            unhealthy.sort();
            let healthy = total - unhealthy.len();
            let status = match (healthy, unhealthy.len()) {
                (_, 0) => HealthStatus::Healthy,
                (0, _) => HealthStatus::Unhealthy,
                _ => HealthStatus::Degraded,
            };
            HealthReport {
                status,
                healthy,
                unhealthy,
            }
        })
    }
}

impl<B: Backend> Handler<ReapIdle> for Supervisor<B> {
    type Result = MessageResult<ReapIdle>;
    fn handle(&mut self, msg: ReapIdle, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.reap(msg.older_than))
    }
}

impl<B: Backend> Handler<Shutdown> for Supervisor<B> {
    type Result = ResponseFuture<ShutdownReport>;
    fn handle(&mut self, msg: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.accepting = false;
        // Replica-set members are pools too: close them with the rest; their actors stop
        // when their set actor does.
        let mut entries = self.member_entries();
        entries.extend(self.pools.drain().map(|(_, e)| e));
        for (_, set) in self.sets.drain() {
            set.addr.do_send(Close);
        }
        self.destroyed += entries.len() as u64;
        let deadline = Instant::now() + msg.deadline;
        let mut report = ShutdownReport {
            pools_closed: entries.len(),
            ..ShutdownReport::default()
        };
        for e in &entries {
            report.connections_closed += e.shared.close(true);
        }
        Box::pin(async move {
            for e in &entries {
                report.still_checked_out += e.shared.wait_returned(deadline).await;
            }
            for e in entries {
                e.addr.do_send(Close);
            }
            tracing::info!(?report, "supervisor shut down");
            report
        })
    }
}

impl<B: Backend> Handler<Subscribe> for Supervisor<B> {
    type Result = ();
    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) {
        self.subscribers.lock().push(msg.0);
    }
}

impl<B: Backend> Handler<RevivePool> for Supervisor<B> {
    type Result = ResponseFuture<Result<bool, Error>>;
    fn handle(&mut self, msg: RevivePool, _: &mut Self::Context) -> Self::Result {
        let addr = self
            .resolve(msg.pool)
            .and_then(|h| h.actor().ok_or(Error::PoolClosed { key: h.key() }));
        Box::pin(async move { Ok(addr?.send(Revive).await?) })
    }
}

impl<B: Backend> Handler<SubscribeTopology> for Supervisor<B> {
    type Result = ();
    fn handle(&mut self, msg: SubscribeTopology, _: &mut Self::Context) {
        self.role_subscribers.lock().push(msg.0);
    }
}

impl<B: Backend> Handler<RegisterReplicaSet<B>> for Supervisor<B> {
    type Result = Result<ReplicaSetHandle<B>, Error>;
    fn handle(&mut self, msg: RegisterReplicaSet<B>, _: &mut Self::Context) -> Self::Result {
        if !self.accepting {
            return Err(Error::ShuttingDown);
        }
        let config = msg.config;
        config.validate()?;
        if let Some(set) = self.sets.get(&config.name) {
            return Ok(set.handle.clone());
        }
        let pool_config = config
            .pool
            .clone()
            .unwrap_or_else(|| self.config.default_pool.clone());
        let factory = self.factory();
        let mut pools = HashMap::new();
        let mut members = Vec::new();
        let all = std::iter::once((config.primary.clone(), Role::Primary))
            .chain(config.replicas.iter().cloned().map(|c| (c, Role::Replica)));
        for (connection, role) in all {
            let key = PoolKey::of(&connection);
            if pools.contains_key(&key) {
                continue;
            }
            let (addr, pool) = factory.spawn(connection, pool_config.clone());
            members.push(Arc::new(
                MemberState::new(pool, role).with_actor(addr.downgrade()),
            ));
            pools.insert(key, addr);
        }
        let shared = Arc::new(SetShared::new(&config, members));
        let actor = ReplicaSetActor::new(
            Arc::clone(&shared),
            factory,
            pool_config,
            config.topology_interval,
            pools,
            Arc::clone(&self.role_subscribers),
        );
        let addr = actor.start();
        let handle = ReplicaSetHandle {
            shared,
            backend: Arc::clone(&self.backend),
            actor: addr.downgrade(),
        };
        tracing::info!(set = %config.name, members = handle.topology().len(), "replica set started");
        self.sets.insert(
            config.name.clone(),
            SetEntry {
                addr,
                handle: handle.clone(),
            },
        );
        Ok(handle)
    }
}

impl<B: Backend> Handler<LookupReplicaSet<B>> for Supervisor<B> {
    type Result = Result<ReplicaSetHandle<B>, Error>;
    fn handle(&mut self, msg: LookupReplicaSet<B>, _: &mut Self::Context) -> Self::Result {
        self.sets
            .get(&msg.name)
            .map(|s| s.handle.clone())
            .ok_or(Error::UnknownPool { name: msg.name })
    }
}
