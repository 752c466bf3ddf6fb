//! Messages the supervisor answers: pools (get, register, look up, acquire, revive),
//! replica sets (register, look up, subscribe to role changes), figures, health, reaping
//! and shutdown.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use actix::{Message, Recipient};

use super::stats::{HealthReport, ShutdownReport, SupervisorStats};
use crate::backends::Backend;
use crate::connection::ConnectionConfig;
use crate::error::Error;
use crate::key::PoolKey;
use crate::pool::config::PoolConfig;
use crate::pool::credential::CredentialsProvider;
use crate::pool::guard::PooledConnection;
use crate::pool::handle::PoolHandle;
use crate::replica_set::config::ReplicaSetConfig;
use crate::replica_set::handle::ReplicaSetHandle;
use crate::replica_set::messages::RoleChanged;

/// Which pool a message means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolRef {
    /// By key.
    Key(PoolKey),
    /// By registered name.
    Name(String),
    /// By connection config (the pool is created if needed).
    Config(Box<ConnectionConfig>),
}

impl From<PoolKey> for PoolRef {
    fn from(k: PoolKey) -> Self {
        PoolRef::Key(k)
    }
}

impl From<&str> for PoolRef {
    fn from(name: &str) -> Self {
        PoolRef::Name(name.to_string())
    }
}

impl From<ConnectionConfig> for PoolRef {
    fn from(c: ConnectionConfig) -> Self {
        PoolRef::Config(Box::new(c))
    }
}

/// Get (creating if needed) the pool for a connection config. Answers a handle to
/// acquire from directly.
///
/// The pool key leaves the password out, so a pool may already run for this config with
/// another password (or provider). Then the presented one is verified with one connect:
/// if it authenticates it becomes the pool's credential (a rotation: new connections use
/// it, connections opened with the old one are closed as they come back) and the handle
/// is answered; if not, the answer is that connect's error (an authentication error is
/// `Error::Backend { phase: Connect, .. }` of kind `Auth`) and the pool is untouched.
/// Presenting the pool's own credential costs no connect (secrets are compared by keyed
/// hash).
///
/// ```
/// use poolwarden::backends::sim::SimBackend;
/// use poolwarden::messages::GetPool;
/// use poolwarden::{BackendErrorKind, ConnectionConfig, Error, Secret, Supervisor, SupervisorConfig};
/// use actix::Actor;
///
/// # actix::System::new().block_on(async {
/// let sim = SimBackend::default();
/// let sup = Supervisor::new(sim.clone(), SupervisorConfig::default())?.start();
/// let mut config = ConnectionConfig::sim("orders");
/// config.password = Some(Secret::new("old"));
/// sim.server(&config.primary_host()).set_password(Some("old"));
/// let pool = sup.send(GetPool::new(config.clone())).await??;
///
/// // A wrong password is refused and gets no connection.
/// config.password = Some(Secret::new("wrong"));
/// match sup.send(GetPool::new(config.clone())).await? {
///     Err(Error::Backend { source, .. }) => assert_eq!(source.kind(), BackendErrorKind::Auth),
///     other => panic!("{other:?}"),
/// }
///
/// // The server's password changes and the new one is handed in: the pool rotates.
/// sim.server(&config.primary_host()).set_password(Some("new"));
/// config.password = Some(Secret::new("new"));
/// let same = sup.send(GetPool::new(config)).await??;
/// assert_eq!(same.key(), pool.key());
/// assert_eq!(pool.stats().credential_rotations, 1);
/// drop(pool.acquire().await?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct GetPool<B> {
    /// Where to connect.
    pub connection: ConnectionConfig,
    /// The pool's settings; `None` uses the supervisor's default. Ignored if the pool exists.
    pub pool: Option<PoolConfig>,
    /// Asked for the password at each connect instead of `connection.password` (see
    /// [`CredentialsProvider`]).
    pub credentials: Option<Arc<dyn CredentialsProvider>>,
    _backend: PhantomData<fn() -> B>,
}

impl<B> GetPool<B> {
    /// The pool for `connection`, with the supervisor's default settings.
    pub fn new(connection: ConnectionConfig) -> Self {
        Self {
            connection,
            pool: None,
            credentials: None,
            _backend: PhantomData,
        }
    }

    /// With settings of its own.
    pub fn with_config(mut self, pool: PoolConfig) -> Self {
        self.pool = Some(pool);
        self
    }

    /// With a provider asked for the password at each connect (see
    /// [`CredentialsProvider`], which has an example).
    pub fn with_credentials(mut self, provider: Arc<dyn CredentialsProvider>) -> Self {
        self.credentials = Some(provider);
        self
    }
}

impl<B: Backend> Message for GetPool<B> {
    type Result = Result<PoolHandle<B>, Error>;
}

/// Register `connection` under `name` (creating the pool if needed). A name always
/// resolves to the same actor as its key; a named pool that was evicted is recreated
/// from the registered config on the next lookup, with the credential that last
/// authenticated for its key. A credential other than the running pool's is verified
/// first, as for [`GetPool`]; the name is registered only if it authenticates.
pub struct Register<B> {
    /// The name.
    pub name: String,
    /// Where to connect.
    pub connection: ConnectionConfig,
    /// The pool's settings; `None` uses the supervisor's default.
    pub pool: Option<PoolConfig>,
    /// Asked for the password at each connect instead of `connection.password`.
    pub credentials: Option<Arc<dyn CredentialsProvider>>,
    _backend: PhantomData<fn() -> B>,
}

impl<B> Register<B> {
    /// Register `connection` as `name`.
    pub fn new(
        name: impl Into<String>,
        connection: ConnectionConfig,
        pool: Option<PoolConfig>,
    ) -> Self {
        Self {
            name: name.into(),
            connection,
            pool,
            credentials: None,
            _backend: PhantomData,
        }
    }

    /// With a provider asked for the password at each connect (see
    /// [`CredentialsProvider`]).
    pub fn with_credentials(mut self, provider: Arc<dyn CredentialsProvider>) -> Self {
        self.credentials = Some(provider);
        self
    }
}

impl<B: Backend> Message for Register<B> {
    type Result = Result<PoolHandle<B>, Error>;
}

/// Resolve a [`PoolRef`] to a handle. By config, a password other than the running
/// pool's is verified first, as for [`GetPool`]; by key or name, no credential is
/// presented and none is checked.
pub struct Lookup<B> {
    /// The pool.
    pub pool: PoolRef,
    _backend: PhantomData<fn() -> B>,
}

impl<B> Lookup<B> {
    /// Look `pool` up.
    pub fn new(pool: impl Into<PoolRef>) -> Self {
        Self {
            pool: pool.into(),
            _backend: PhantomData,
        }
    }
}

impl<B: Backend> Message for Lookup<B> {
    type Result = Result<PoolHandle<B>, Error>;
}

/// Check a connection out of a pool, through the supervisor. Convenient from actix code;
/// for the hot path resolve a [`PoolHandle`] once and acquire from it.
pub struct Acquire<B> {
    /// The pool.
    pub pool: PoolRef,
    /// Overrides the pool's acquire timeout.
    pub timeout: Option<Duration>,
    _backend: PhantomData<fn() -> B>,
}

impl<B> Acquire<B> {
    /// Acquire from `pool` with its own timeout.
    pub fn new(pool: impl Into<PoolRef>) -> Self {
        Self {
            pool: pool.into(),
            timeout: None,
            _backend: PhantomData,
        }
    }

    /// With a timeout of its own.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<B: Backend> Message for Acquire<B> {
    type Result = Result<PooledConnection<B>, Error>;
}

/// Figures of the supervisor and every pool.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "SupervisorStats")]
pub struct GetStats;

/// Probe every pool.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "HealthReport")]
pub struct HealthCheck;

/// Drain and stop every pool unused for `older_than` with nothing checked out. Answers
/// the keys removed.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<PoolKey>")]
pub struct ReapIdle {
    /// Minimum time since the pool's last acquire.
    pub older_than: Duration,
}

/// Stop accepting acquires, wait up to `deadline` for checked-out connections, close
/// everything.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "ShutdownReport")]
pub struct Shutdown {
    /// How long to wait for connections to come back.
    pub deadline: Duration,
}

/// Bring a failed pool back into service (see `SupervisorConfig::max_restarts`). Answers
/// whether it was failed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, Error>")]
pub struct RevivePool {
    /// The pool.
    pub pool: PoolRef,
}

/// Start a replica set (one pool per member, owned by a new replica-set actor), or get
/// the running one of that name.
pub struct RegisterReplicaSet<B> {
    /// The set.
    pub config: ReplicaSetConfig,
    _backend: PhantomData<fn() -> B>,
}

impl<B> RegisterReplicaSet<B> {
    /// Register `config`.
    pub fn new(config: ReplicaSetConfig) -> Self {
        Self {
            config,
            _backend: PhantomData,
        }
    }
}

impl<B: Backend> Message for RegisterReplicaSet<B> {
    type Result = Result<ReplicaSetHandle<B>, Error>;
}

/// The running replica set called `name`.
pub struct LookupReplicaSet<B> {
    /// Its name.
    pub name: String,
    _backend: PhantomData<fn() -> B>,
}

impl<B> LookupReplicaSet<B> {
    /// Look `name` up.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            _backend: PhantomData,
        }
    }
}

impl<B: Backend> Message for LookupReplicaSet<B> {
    type Result = Result<ReplicaSetHandle<B>, Error>;
}

/// Every running replica set, sorted by name.
pub struct ListReplicaSets<B> {
    _backend: PhantomData<fn() -> B>,
}

impl<B> Default for ListReplicaSets<B> {
    fn default() -> Self {
        Self {
            _backend: PhantomData,
        }
    }
}

impl<B: Backend> Message for ListReplicaSets<B> {
    type Result = Vec<ReplicaSetHandle<B>>;
}

/// Deliver every [`RoleChanged`] of every replica set to `0` (bounded mailbox; a full
/// one drops the event with a warning).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SubscribeTopology(pub Recipient<RoleChanged>);

/// Get (creating if needed) the pool for a connection config, with [`Hooks`](crate::Hooks) (see
/// [`SupervisorHandle::pool_with_hooks`](crate::SupervisorHandle::pool_with_hooks), which
/// has an example). A pool's hooks are fixed when it is created: if the pool already runs,
/// it is answered only when it runs with the same hooks (clones of one `Hooks`), else the
/// answer is an [`Error::Config`] naming `hooks` and the pool is untouched. The password
/// is handled as by [`GetPool`].
///
/// ```
/// use poolwarden::backends::sim::{SimBackend, SimConnection};
/// use poolwarden::messages::GetPoolWithHooks;
/// use poolwarden::{ConnectionConfig, Hooks, Supervisor, SupervisorConfig};
/// use actix::Actor;
///
/// # actix::System::new().block_on(async {
/// let sup = Supervisor::new(SimBackend::default(), SupervisorConfig::default())?.start();
/// let hooks = Hooks::<SimConnection>::new()
///     .before_close(|conn| Box::pin(async move { let _ = conn.query("UNLISTEN *").await; }));
/// let request = GetPoolWithHooks::<SimBackend>::new(ConnectionConfig::sim("orders"), hooks);
/// let pool = sup.send(request).await??;
/// drop(pool.acquire().await?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct GetPoolWithHooks<B: crate::backends::Backend> {
    /// Where to connect.
    pub connection: ConnectionConfig,
    /// The pool's settings; `None` uses the supervisor's default. Ignored if the pool exists.
    pub pool: Option<PoolConfig>,
    /// The pool's hooks.
    pub hooks: crate::pool::hooks::Hooks<B::Connection>,
}

impl<B: Backend> GetPoolWithHooks<B> {
    /// The pool for `connection` with `hooks`, with the supervisor's default settings.
    pub fn new(
        connection: ConnectionConfig,
        hooks: crate::pool::hooks::Hooks<B::Connection>,
    ) -> Self {
        Self {
            connection,
            pool: None,
            hooks,
        }
    }

    /// With settings of its own.
    pub fn with_config(mut self, pool: PoolConfig) -> Self {
        self.pool = Some(pool);
        self
    }
}

impl<B: Backend> Message for GetPoolWithHooks<B> {
    type Result = Result<PoolHandle<B>, Error>;
}
