//! A replica set's shared state and its handle. Reads and writes are routed in the
//! caller's task (the pure [`router`](crate::router) picks, the member's pool serves);
//! the replica-set actor only keeps roles, lag and membership up to date.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::WeakAddr;
use futures::FutureExt;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::actors::pool::PoolActor;
use crate::actors::replica_set::ReplicaSetActor;
use crate::backend::{Backend, MemberStatus};
use crate::config::connection::ConnectionConfig;
use crate::error::{Error, Phase};
use crate::key::PoolKey;
use crate::messages::replica_set::{AddMember, RemoveMember};
use crate::pool::core::{panic_message, PoolShared};
use crate::pool::guard::PooledConnection;
use crate::router::{self, Member, ReadRequest, Role, Router, Strategy};

const UNKNOWN: u64 = u64::MAX;

/// A write position: reads acquired with it see the write that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CausalityToken(pub u64);

/// One member as routing sees it, updated by the replica-set actor.
pub(crate) struct MemberState<B: Backend> {
    pub(crate) pool: Arc<PoolShared<B>>,
    role: AtomicU8,
    lag_ms: AtomicU64,
    position: AtomicU64,
    primary_since: AtomicU64,
    reachable: AtomicBool,
    reads: AtomicU64,
    actor: Option<WeakAddr<PoolActor<B>>>,
}

/// Promotions seen by any set of this process, in order: a member's `primary_since`.
static PROMOTIONS: AtomicU64 = AtomicU64::new(0);

fn role_code(r: Role) -> u8 {
    match r {
        Role::Primary => 0,
        Role::Replica => 1,
    }
}

impl<B: Backend> MemberState<B> {
    pub(crate) fn new(pool: Arc<PoolShared<B>>, role: Role) -> Self {
        Self {
            pool,
            role: AtomicU8::new(role_code(role)),
            lag_ms: AtomicU64::new(UNKNOWN),
            position: AtomicU64::new(UNKNOWN),
            primary_since: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
            reads: AtomicU64::new(0),
            actor: None,
        }
    }

    pub(crate) fn with_actor(mut self, actor: WeakAddr<PoolActor<B>>) -> Self {
        self.actor = Some(actor);
        self
    }

    /// The member's pool actor, while it runs.
    pub(crate) fn pool_actor(&self) -> Option<actix::Addr<PoolActor<B>>> {
        self.actor.as_ref().and_then(WeakAddr::upgrade)
    }

    pub(crate) fn role(&self) -> Role {
        match self.role.load(Ordering::Relaxed) {
            0 => Role::Primary,
            _ => Role::Replica,
        }
    }

    /// Record what a topology probe learned; answers the old role if it changed.
    pub(crate) fn observe(&self, status: Option<MemberStatus>) -> Option<Role> {
        let Some(status) = status else {
            self.reachable.store(true, Ordering::Relaxed);
            return None;
        };
        self.reachable.store(true, Ordering::Relaxed);
        let lag = status
            .lag
            .map_or(UNKNOWN, |l| l.as_millis().min(u64::MAX as u128 - 1) as u64);
        self.lag_ms.store(lag, Ordering::Relaxed);
        self.position
            .store(status.position.unwrap_or(UNKNOWN), Ordering::Relaxed);
        let old = self.role.swap(role_code(status.role), Ordering::AcqRel);
        let was = if old == 0 {
            Role::Primary
        } else {
            Role::Replica
        };
        if was == Role::Replica && status.role == Role::Primary {
            let seq = PROMOTIONS.fetch_add(1, Ordering::Relaxed) + 1;
            self.primary_since.store(seq, Ordering::Relaxed);
        }
        (was != status.role).then_some(was)
    }

    pub(crate) fn unreachable(&self) {
        self.reachable.store(false, Ordering::Relaxed);
    }

    fn view(&self) -> Member {
        let opt = |v: u64| (v != UNKNOWN).then_some(v);
        Member {
            role: self.role(),
            usable: self.reachable.load(Ordering::Relaxed)
                && self.pool.serving()
                && !self.pool.is_closed(),
            lag: opt(self.lag_ms.load(Ordering::Relaxed)).map(Duration::from_millis),
            load: self.pool.load(),
            replayed: opt(self.position.load(Ordering::Relaxed)),
            primary_since: self.primary_since.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn info(&self) -> MemberInfo {
        let v = self.view();
        let stats = self.pool.stats();
        MemberInfo {
            key: self.pool.key,
            host: self.pool.connection.primary_host(),
            role: v.role,
            usable: v.usable,
            lag: v.lag,
            position: v.replayed,
            breaker: stats.breaker,
            in_use: stats.in_use,
            idle: stats.idle,
            reads: self.reads.load(Ordering::Relaxed),
        }
    }
}

/// One member, as [`ReplicaSetHandle::topology`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberInfo {
    /// The member's pool.
    pub key: PoolKey,
    /// `host:port`.
    pub host: String,
    /// Current role.
    pub role: Role,
    /// Routed to (breaker closed, healthy, reachable).
    pub usable: bool,
    /// Replication lag, when known.
    pub lag: Option<Duration>,
    /// Replay or write position, when known.
    pub position: Option<u64>,
    /// Breaker state of its pool.
    pub breaker: crate::breaker::BreakerState,
    /// Checked-out connections.
    pub in_use: usize,
    /// Idle connections.
    pub idle: usize,
    /// Reads routed to it.
    pub reads: u64,
}

pub(crate) struct SetShared<B: Backend> {
    pub(crate) name: String,
    pub(crate) strategy: Strategy,
    pub(crate) max_lag: Option<Duration>,
    pub(crate) fallback_to_primary: bool,
    pub(crate) members: RwLock<Vec<Arc<MemberState<B>>>>,
    router: Mutex<Router>,
    /// Woken after every member probe of the replica-set actor.
    pub(crate) changed: Notify,
}

impl<B: Backend> SetShared<B> {
    pub(crate) fn new(config: &crate::ReplicaSetConfig, members: Vec<Arc<MemberState<B>>>) -> Self {
        Self {
            name: config.name.clone(),
            strategy: config.strategy,
            max_lag: config.max_lag,
            fallback_to_primary: config.fallback_to_primary,
            members: RwLock::new(members),
            router: Mutex::new(Router::default()),
            changed: Notify::new(),
        }
    }

    /// A caller is here: teach the supervisor's pools this runtime (`pool/home.rs`; every
    /// member shares the supervisor's `Home`).
    fn learn_home(&self) {
        if let Some(m) = self.members.read().first() {
            m.pool.home.learn();
        }
    }

    fn snapshot(&self) -> (Vec<Arc<MemberState<B>>>, Vec<Member>) {
        let members = self.members.read().clone();
        let views = members.iter().map(|m| m.view()).collect();
        (members, views)
    }
}

/// Read options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Overrides the set's strategy.
    pub strategy: Option<Strategy>,
    /// Read-your-writes: only members that replayed past this token (else the primary).
    pub after: Option<CausalityToken>,
}

/// A cloneable handle to a replica set: writes go to the primary, reads to a replica
/// chosen by the set's strategy, all in the caller's task.
pub struct ReplicaSetHandle<B: Backend> {
    pub(crate) shared: Arc<SetShared<B>>,
    pub(crate) backend: Arc<B>,
    pub(crate) actor: WeakAddr<ReplicaSetActor<B>>,
}

impl<B: Backend> Clone for ReplicaSetHandle<B> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            backend: Arc::clone(&self.backend),
            actor: self.actor.clone(),
        }
    }
}

/// How long a write whose primary refused waits, at most, before asking again (a
/// topology change wakes it sooner).
const WRITE_RETRY: Duration = Duration::from_millis(50);

/// The backend error behind a failed acquire, if any.
/// Errors worth a second try on another member.
fn worth_retrying(e: &Error) -> bool {
    matches!(
        e,
        Error::Backend {
            phase: Phase::Connect,
            ..
        } | Error::Timeout {
            phase: Phase::Connect,
            ..
        } | Error::CircuitOpen { .. }
            | Error::PoolFailed { .. }
            | Error::PoolClosed { .. }
    )
}

impl<B: Backend> ReplicaSetHandle<B> {
    /// The set's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A connection to the primary, within the primary pool's acquire timeout.
    ///
    /// A connect to the primary that fails (refused, breaker open) is not retried against
    /// the same server with backoff: the write waits for the next topology probe (50 ms at
    /// most) and asks again which member is the primary, so a write issued
    /// during a failover lands on the promoted member as soon as the set has seen it,
    /// instead of failing. Past the deadline it fails with a [`Timeout`](Error::Timeout)
    /// carrying the last connect error.
    pub async fn write(&self) -> Result<PooledConnection<B>, Error> {
        self.shared.learn_home();
        let start = Instant::now();
        let mut budget = None;
        loop {
            // Registered before the snapshot, so a change in between is not missed.
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (members, views) = self.shared.snapshot();
            let i = router::primary(&views).ok_or_else(|| Error::NoMember {
                set: self.shared.name.clone(),
            })?;
            let member = &members[i];
            let total = *budget.get_or_insert(member.pool.config.acquire_timeout);
            let left = total.saturating_sub(start.elapsed());
            let e = match member.pool.acquire_no_retry(left).await {
                Ok(conn) => return Ok(conn),
                Err(e) if worth_retrying(&e) => e,
                Err(e) => return Err(e),
            };
            let left = total.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(match e {
                    Error::Timeout { .. } => e,
                    other => Error::Timeout {
                        key: member.pool.key,
                        phase: Phase::Connect,
                        elapsed: start.elapsed(),
                        last_error: other.source_backend().cloned(),
                    },
                });
            }
            tracing::debug!(set = %self.shared.name, member = %member.pool.key, error = %e, "write failed; waiting for the primary");
            let _ = tokio::time::timeout(left.min(WRITE_RETRY), changed).await;
        }
    }

    /// Return a write connection and answer its causality token (the server's write
    /// position), when the backend has one.
    pub async fn release_write(
        &self,
        mut conn: PooledConnection<B>,
    ) -> Result<Option<CausalityToken>, Error> {
        let asked = AssertUnwindSafe(self.backend.write_position(&mut conn)).catch_unwind();
        let position = match asked.await {
            Ok(Ok(position)) => position,
            Ok(Err(source)) => {
                return Err(Error::Backend {
                    key: conn.key(),
                    phase: Phase::Probe,
                    source,
                })
            }
            Err(panic) => {
                let message = panic_message(&*panic);
                let key = conn.key();
                conn.discard();
                return Err(Error::BackendPanic {
                    key,
                    phase: Phase::Probe,
                    message,
                });
            }
        };
        drop(conn);
        Ok(position.map(CausalityToken))
    }

    /// A connection for reading, routed by the set's strategy.
    pub async fn read(&self) -> Result<PooledConnection<B>, Error> {
        self.read_with(ReadOptions::default()).await
    }

    /// A connection for reading with per-request options. A read whose connect fails is
    /// retried once on another member within the same acquire budget: while another
    /// member could serve it, the first member gets one connect attempt (no backoff
    /// retries), so the retry has time left.
    pub async fn read_with(&self, options: ReadOptions) -> Result<PooledConnection<B>, Error> {
        self.shared.learn_home();
        let start = Instant::now();
        let (members, views) = self.shared.snapshot();
        let mut request = ReadRequest {
            strategy: options.strategy.unwrap_or(self.shared.strategy),
            max_lag: self.shared.max_lag,
            at_least: options.after.map(|t| t.0),
            exclude: None,
            fallback_to_primary: self.shared.fallback_to_primary,
        };
        let mut budget = None;
        loop {
            let (picked, alternative) = {
                let mut router = self.shared.router.lock();
                let mut rng = rand::rng();
                let picked = router.pick_read(&views, &request, &mut rng);
                // Would a retry have somewhere to go? Asked of a copy, so the cursor
                // only moves for picks that are used.
                let alternative = match picked {
                    Some(i) if request.exclude.is_none() => {
                        let retry = ReadRequest {
                            exclude: Some(i),
                            ..request
                        };
                        router.clone().pick_read(&views, &retry, &mut rng).is_some()
                    }
                    _ => false,
                };
                (picked, alternative)
            };
            let i = picked.ok_or_else(|| Error::NoMember {
                set: self.shared.name.clone(),
            })?;
            let member = &members[i];
            let total = *budget.get_or_insert(member.pool.config.acquire_timeout);
            let left = total.saturating_sub(start.elapsed());
            let attempt = if alternative {
                member.pool.acquire_no_retry(left).await
            } else {
                member.pool.acquire_within(left).await
            };
            match attempt {
                Ok(conn) => {
                    member.reads.fetch_add(1, Ordering::Relaxed);
                    return Ok(conn);
                }
                Err(e) if alternative && worth_retrying(&e) => {
                    tracing::debug!(set = %self.shared.name, member = %member.pool.key, error = %e, "read failed; retrying on another member");
                    request.exclude = Some(i);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Every member's role, health and load, from the routing state (no message).
    pub fn topology(&self) -> Vec<MemberInfo> {
        self.shared
            .members
            .read()
            .iter()
            .map(|m| m.info())
            .collect()
    }

    /// The member pool for `key`, to inspect or resize it.
    pub fn member(&self, key: PoolKey) -> Option<crate::PoolStats> {
        self.shared
            .members
            .read()
            .iter()
            .find(|m| m.pool.key == key)
            .map(|m| m.pool.stats())
    }

    /// Add a member at run time; answers its pool key.
    pub async fn add_member(
        &self,
        connection: ConnectionConfig,
        role: Role,
    ) -> Result<PoolKey, Error> {
        self.set_actor()?
            .send(AddMember { connection, role })
            .await?
    }

    /// Remove a member at run time; answers whether it was one.
    pub async fn remove_member(&self, key: PoolKey) -> Result<bool, Error> {
        Ok(self.set_actor()?.send(RemoveMember { key }).await?)
    }

    /// The replica-set actor's address while it runs, to send it
    /// [`Topology`](crate::messages::Topology), [`AddMember`] or [`RemoveMember`].
    pub fn actor(&self) -> Option<actix::Addr<ReplicaSetActor<B>>> {
        self.actor.upgrade()
    }

    fn set_actor(&self) -> Result<actix::Addr<ReplicaSetActor<B>>, Error> {
        self.actor.upgrade().ok_or_else(|| Error::UnknownPool {
            name: self.shared.name.clone(),
        })
    }

    /// The connection configs of the members, primary first as configured.
    pub fn members(&self) -> Vec<ConnectionConfig> {
        self.shared
            .members
            .read()
            .iter()
            .map(|m| m.pool.connection.clone())
            .collect()
    }
}

impl<B: Backend> fmt::Debug for ReplicaSetHandle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaSetHandle")
            .field("name", &self.shared.name)
            .field("members", &self.shared.members.read().len())
            .finish()
    }
}
