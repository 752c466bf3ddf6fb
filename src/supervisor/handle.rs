//! A cloneable handle to a supervisor for code that would rather call methods than send
//! messages, and a way to run the supervisor in a process with no actix System of its own.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::actor::Supervisor;
use super::config::SupervisorConfig;
use super::events::{BreakerTransition, Subscribe};
use super::inventory::{Contains, ListPools, PoolListing};
use super::messages::GetPoolWithHooks;
use super::messages::{
    Acquire, GetPool, GetStats, HealthCheck, ListReplicaSets, Lookup, LookupReplicaSet, PoolRef,
    ReapIdle, Register, RegisterReplicaSet, RevivePool, Shutdown, SubscribeTopology,
};
use super::stats::{HealthReport, ShutdownReport, SupervisorStats};
use crate::backends::Backend;
use crate::connection::ConnectionConfig;
use crate::error::{ConfigError, Error};
use crate::key::PoolKey;
use crate::pool::config::PoolConfig;
use crate::pool::credential::CredentialsProvider;
use crate::pool::guard::PooledConnection;
use crate::pool::handle::PoolHandle;
use crate::pool::hooks::Hooks;
use crate::replica_set::config::ReplicaSetConfig;
use crate::replica_set::handle::ReplicaSetHandle;
use crate::replica_set::messages::RoleChanged;

/// Methods that send the supervisor's messages. Cheap to clone, `Send`, usable from any
/// tokio runtime.
///
/// ```
/// use poolwarden::backends::sim::SimBackend;
/// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
///
/// # actix::System::new().block_on(async {
/// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
/// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
/// drop(pool.acquire().await?);
/// let clone = sup.clone(); // cheap; every clone talks to the same supervisor
/// assert_eq!(clone.stats().await?.pools, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct SupervisorHandle<B: Backend> {
    addr: Addr<Supervisor<B>>,
}

impl<B: Backend> Clone for SupervisorHandle<B> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for SupervisorHandle<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorHandle")
            .field("backend", &std::any::type_name::<B>())
            .field("connected", &self.addr.connected())
            .finish()
    }
}

impl<B: Backend> From<Addr<Supervisor<B>>> for SupervisorHandle<B> {
    fn from(addr: Addr<Supervisor<B>>) -> Self {
        Self { addr }
    }
}

impl<B: Backend> SupervisorHandle<B> {
    /// Start a supervisor on the current actix arbiter.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// assert_eq!(sup.stats().await?.pools, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn start(backend: B, config: SupervisorConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: Supervisor::new(backend, config)?.start(),
        })
    }

    /// The supervisor's address, for sending messages directly.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use poolwarden::messages::GetStats;
    /// let stats = sup.addr().send(GetStats).await?;
    /// assert_eq!(stats.pools, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn addr(&self) -> &Addr<Supervisor<B>> {
        &self.addr
    }

    /// The pool for `connection` (created with the default pool config if needed).
    ///
    /// If the pool runs with another password, this one is verified with one connect
    /// first (see [`GetPool`]): authenticated, it becomes the pool's password (rotation);
    /// refused, the answer is the authentication error and the pool is untouched.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::parse("sim://db1/orders")?).await?;
    /// let again = sup.pool(ConnectionConfig::parse("sim://db1/orders")?).await?;
    /// assert_eq!(pool.key(), again.key(), "one pool per key");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the pool is created).
    pub async fn pool(&self, connection: ConnectionConfig) -> Result<PoolHandle<B>, Error> {
        self.addr.send(GetPool::new(connection)).await?
    }

    /// The pool for `connection`, created with `pool` if it does not exist yet.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use poolwarden::PoolConfig;
    /// let pool = sup
    ///     .pool_with(ConnectionConfig::sim("orders"), PoolConfig { max_size: 4, ..PoolConfig::default() })
    ///     .await?;
    /// assert_eq!(pool.stats().max_size, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the pool is created).
    pub async fn pool_with(
        &self,
        connection: ConnectionConfig,
        pool: PoolConfig,
    ) -> Result<PoolHandle<B>, Error> {
        self.addr
            .send(GetPool::new(connection).with_config(pool))
            .await?
    }

    /// The pool for `connection` whose connects ask `provider` for the password (each
    /// time; its secret replaces `connection.password`), created with `pool` (or the
    /// default pool config) if it does not exist yet. If the pool runs with another
    /// credential, the provider is verified with one connect first, as a new password is
    /// by [`pool`](Self::pool). See [`CredentialsProvider`] for an example.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use std::sync::Arc;
    /// use poolwarden::Secret;
    /// let provider = Arc::new(|_: &ConnectionConfig| async { Ok(Secret::new("token")) });
    /// let pool = sup.pool_with_credentials(ConnectionConfig::sim("iam"), None, provider).await?;
    /// drop(pool.acquire().await?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the pool is created,
    /// or the credential verified and taken up).
    pub async fn pool_with_credentials(
        &self,
        connection: ConnectionConfig,
        pool: Option<PoolConfig>,
        provider: Arc<dyn CredentialsProvider>,
    ) -> Result<PoolHandle<B>, Error> {
        let mut request = GetPool::new(connection).with_credentials(provider);
        request.pool = pool;
        self.addr.send(request).await?
    }

    /// Register `connection` under `name` (its password verified first if the pool runs
    /// with another, as for [`pool`](Self::pool)).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// sup.register("orders", ConnectionConfig::sim("orders"), None).await?;
    /// let pool = sup.lookup("orders").await?;
    /// drop(pool.acquire().await?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the name is
    /// registered once the credential is verified).
    pub async fn register(
        &self,
        name: impl Into<String>,
        connection: ConnectionConfig,
        pool: Option<PoolConfig>,
    ) -> Result<PoolHandle<B>, Error> {
        self.addr
            .send(Register::new(name, connection, pool))
            .await?
    }

    /// The pool registered as `name`, or with `key`, or for a config.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// assert_eq!(sup.lookup(pool.key()).await?.key(), pool.key());
    /// assert!(sup.lookup("nobody").await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out.
    pub async fn lookup(&self, pool: impl Into<PoolRef>) -> Result<PoolHandle<B>, Error> {
        self.addr.send(Lookup::new(pool)).await?
    }

    /// Whether a pool is known, without creating it: a registered name, a running key, or
    /// the running pool of a config's key (see [`Contains`]).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let config = ConnectionConfig::sim("orders");
    /// assert!(!sup.contains("orders").await?);
    /// let pool = sup.register("orders", config.clone(), None).await?;
    /// assert!(sup.contains("orders").await? && sup.contains(pool.key()).await?);
    /// assert!(sup.contains(config).await?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only loses the answer.
    pub async fn contains(&self, pool: impl Into<PoolRef>) -> Result<bool, Error> {
        Ok(self.addr.send(Contains(pool.into())).await?)
    }

    /// Every running pool and registered name, without creating any (see [`ListPools`]).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// sup.register("orders", ConnectionConfig::parse("sim://db1/orders")?, None).await?;
    /// let pools = sup.pools().await?;
    /// assert_eq!(pools[0].names, ["orders"]);
    /// assert_eq!(pools[0].target, "sim://db1:1/orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only loses the answer.
    pub async fn pools(&self) -> Result<Vec<PoolListing>, Error> {
        Ok(self.addr.send(ListPools).await?)
    }

    /// Acquire through the supervisor (one message hop more than [`PoolHandle::acquire`]).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let mut conn = sup.acquire(ConnectionConfig::sim("orders")).await?;
    /// conn.query("SELECT 1").await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped, the supervisor still finishes the acquire and the
    /// connection, having nobody to go to, is returned to its pool at once; nothing leaks.
    pub async fn acquire(&self, pool: impl Into<PoolRef>) -> Result<PooledConnection<B>, Error> {
        self.addr.send(Acquire::new(pool)).await?
    }

    /// Figures of the supervisor and every pool.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// drop(sup.acquire(ConnectionConfig::sim("orders")).await?);
    /// let stats = sup.stats().await?;
    /// assert_eq!((stats.pools, stats.connections_served), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out.
    pub async fn stats(&self) -> Result<SupervisorStats, Error> {
        Ok(self.addr.send(GetStats).await?)
    }

    /// Probe every pool.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use poolwarden::HealthStatus;
    /// sup.pool(ConnectionConfig::sim("orders")).await?;
    /// assert_eq!(sup.health().await?.status, HealthStatus::Healthy);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the probes run to their timeout).
    pub async fn health(&self) -> Result<HealthReport, Error> {
        Ok(self.addr.send(HealthCheck).await?)
    }

    /// Drain and stop pools unused for `older_than`.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use std::time::Duration;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// assert!(sup.reap_idle(Duration::from_secs(3600)).await?.is_empty(), "used just now");
    /// assert_eq!(sup.reap_idle(Duration::ZERO).await?, vec![pool.key()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the pools are reaped).
    pub async fn reap_idle(&self, older_than: Duration) -> Result<Vec<PoolKey>, Error> {
        Ok(self.addr.send(ReapIdle { older_than }).await?)
    }

    /// Bring a pool that failed after too many restarts back into service. Answers
    /// whether it was failed.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// assert!(!sup.revive(pool.key()).await?, "it had not failed");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the pool is revived).
    pub async fn revive(&self, pool: impl Into<PoolRef>) -> Result<bool, Error> {
        self.addr.send(RevivePool { pool: pool.into() }).await?
    }

    /// Start a replica set (or get the running one of that name).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use poolwarden::ReplicaSetConfig;
    /// let set = sup
    ///     .replica_set(ReplicaSetConfig::new(
    ///         "orders",
    ///         ConnectionConfig::sim("primary"),
    ///         vec![ConnectionConfig::sim("replica1")],
    ///     ))
    ///     .await?;
    /// let _ = set;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the set is started).
    pub async fn replica_set(
        &self,
        config: ReplicaSetConfig,
    ) -> Result<ReplicaSetHandle<B>, Error> {
        self.addr.send(RegisterReplicaSet::new(config)).await?
    }

    /// The running replica set called `name`.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use poolwarden::ReplicaSetConfig;
    /// let config = ReplicaSetConfig::new("orders", ConnectionConfig::sim("primary"), vec![]);
    /// sup.replica_set(config).await?;
    /// assert!(sup.lookup_replica_set("orders").await.is_ok());
    /// assert!(sup.lookup_replica_set("other").await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out.
    pub async fn lookup_replica_set(
        &self,
        name: impl Into<String>,
    ) -> Result<ReplicaSetHandle<B>, Error> {
        self.addr.send(LookupReplicaSet::new(name)).await?
    }

    /// Every running replica set, sorted by name (what a dashboard lists).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, ReplicaSetConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// sup.replica_set(ReplicaSetConfig::new("orders", ConnectionConfig::sim("primary"), vec![]))
    ///     .await?;
    /// let sets = sup.replica_sets().await?;
    /// assert_eq!(sets.len(), 1);
    /// assert_eq!(sets[0].name(), "orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only loses the answer.
    pub async fn replica_sets(&self) -> Result<Vec<ReplicaSetHandle<B>>, Error> {
        Ok(self.addr.send(ListReplicaSets::default()).await?)
    }

    /// Deliver every replica-set role change to `subscriber`.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use actix::prelude::*;
    /// use poolwarden::messages::RoleChanged;
    ///
    /// struct Log;
    /// impl Actor for Log {
    ///     type Context = Context<Self>;
    /// }
    /// impl Handler<RoleChanged> for Log {
    ///     type Result = ();
    ///     fn handle(&mut self, change: RoleChanged, _: &mut Context<Self>) {
    ///         println!("{change:?}");
    ///     }
    /// }
    /// sup.subscribe_topology(Log.start().recipient()).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the subscriber is added).
    pub async fn subscribe_topology(
        &self,
        subscriber: Recipient<RoleChanged>,
    ) -> Result<(), Error> {
        Ok(self.addr.send(SubscribeTopology(subscriber)).await?)
    }

    /// Deliver every pool's circuit-breaker transitions to `subscriber`.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use actix::prelude::*;
    /// use poolwarden::messages::BreakerTransition;
    ///
    /// struct Alert;
    /// impl Actor for Alert {
    ///     type Context = Context<Self>;
    /// }
    /// impl Handler<BreakerTransition> for Alert {
    ///     type Result = ();
    ///     fn handle(&mut self, t: BreakerTransition, _: &mut Context<Self>) {
    ///         println!("pool {}: {:?} -> {:?}", t.key, t.from, t.to);
    ///     }
    /// }
    /// sup.subscribe(Alert.start().recipient()).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the subscriber is added).
    pub async fn subscribe(&self, subscriber: Recipient<BreakerTransition>) -> Result<(), Error> {
        Ok(self.addr.send(Subscribe(subscriber)).await?)
    }

    /// Stop accepting acquires, wait up to `deadline` for connections to come back, close all.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use std::time::Duration;
    /// sup.pool(ConnectionConfig::sim("orders")).await?;
    /// let report = sup.shutdown(Duration::from_secs(5)).await?;
    /// assert_eq!(report.pools_closed, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out: the shutdown goes
    /// on, pools stop serving and close their connections as they come back.
    pub async fn shutdown(&self, deadline: Duration) -> Result<ShutdownReport, Error> {
        Ok(self.addr.send(Shutdown { deadline }).await?)
    }

    /// The pool for `connection` running `hooks` (see [`Hooks`] for what each does and an
    /// example), created with `pool` (or the default pool config) if it does not run yet.
    ///
    /// A pool's hooks are fixed when it is created. If the key already runs, its pool is
    /// answered when it runs with the same hooks (a clone of the `Hooks` it was created
    /// with), else the answer is [`Error::Config`] naming `hooks` and the running pool
    /// keeps its own: a caller never silently gets a pool that skips the `after_connect` it
    /// asked for. (Callers of [`pool`](Self::pool) get the pool with whatever hooks it
    /// runs.) A pool evicted or reaped is created again by the next call, with the hooks
    /// that call brings. The password is handled as by [`pool`](Self::pool).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the pool is created).
    ///
    /// ```
    /// use poolwarden::backends::sim::{SimBackend, SimConnection};
    /// use poolwarden::{ConnectionConfig, Error, Hooks, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let config = ConnectionConfig::sim("tenant");
    /// let hooks = Hooks::<SimConnection>::new().after_connect(|conn| {
    ///     Box::pin(async move {
    ///         conn.query("SET search_path TO tenant").await?;
    ///         Ok(())
    ///     })
    /// });
    /// let pool = sup.pool_with_hooks(config.clone(), None, hooks.clone()).await?;
    /// // The same hooks: the same pool.
    /// let again = sup.pool_with_hooks(config.clone(), None, hooks).await?;
    /// assert_eq!(again.key(), pool.key());
    /// // Other hooks for a running key: refused, the pool keeps its own.
    /// let other = Hooks::<SimConnection>::new();
    /// assert!(matches!(
    ///     sup.pool_with_hooks(config, None, other).await,
    ///     Err(Error::Config(_))
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn pool_with_hooks(
        &self,
        connection: ConnectionConfig,
        pool: Option<PoolConfig>,
        hooks: Hooks<B::Connection>,
    ) -> Result<PoolHandle<B>, Error> {
        let mut request = GetPoolWithHooks::new(connection, hooks);
        request.pool = pool;
        self.addr.send(request).await?
    }
}

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
            handle: SupervisorHandle { addr },
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
