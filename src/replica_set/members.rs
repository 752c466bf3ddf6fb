//! The members of a replica set as routing sees them: each member's pool with its role,
//! lag, position and reachability (kept up to date by the replica-set actor's topology
//! probes), and the set's shared state that reads and writes route over.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, WeakAddr};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::Notify;

use super::config::ReplicaSetConfig;
use super::router::{Member, ReadRequest, Router, Strategy};
use crate::backends::{Backend, MemberStatus, Role};
use crate::connection::ConnectionConfig;
use crate::key::PoolKey;
use crate::observe::member::MemberObserver;
use crate::policy::breaker::BreakerState;
use crate::pool::actor::PoolActor;
use crate::pool::config::PoolConfig;
use crate::pool::factory::PoolFactory;
use crate::pool::shared::PoolShared;

const UNKNOWN: u64 = u64::MAX;

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
    /// Its `poolwarden.replica_set.*` series.
    pub(crate) observe: MemberObserver,
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
    /// Start a member's pool (its actor under the factory's supervision) and its routing
    /// state. The caller holds the only strong address of the pool actor.
    /// Its pool is labelled `<set>/<host:port>` in metrics and traces.
    pub(crate) fn spawn(
        factory: &PoolFactory<B>,
        set: &str,
        key: PoolKey,
        connection: ConnectionConfig,
        role: Role,
        config: PoolConfig,
    ) -> (Addr<PoolActor<B>>, Arc<Self>) {
        let mut factory = factory.clone();
        factory.name = Some(format!("{set}/{}", connection.primary_host()));
        let (addr, pool) = factory.spawn(key, connection, config);
        let observe = MemberObserver::new(pool.observe.label(), set);
        let member = Self::new(pool, role, observe).with_actor(addr.downgrade());
        (addr, Arc::new(member))
    }

    fn new(pool: Arc<PoolShared<B>>, role: Role, observe: MemberObserver) -> Self {
        Self {
            pool,
            role: AtomicU8::new(role_code(role)),
            lag_ms: AtomicU64::new(UNKNOWN),
            position: AtomicU64::new(UNKNOWN),
            primary_since: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
            reads: AtomicU64::new(0),
            actor: None,
            observe,
        }
    }

    fn with_actor(mut self, actor: WeakAddr<PoolActor<B>>) -> Self {
        self.actor = Some(actor);
        self
    }

    /// The member's pool actor, while it runs.
    pub(crate) fn pool_actor(&self) -> Option<Addr<PoolActor<B>>> {
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
        if !self.reachable.swap(true, Ordering::Relaxed) {
            self.observe.readmitted();
            tracing::info!(member = %self.pool.key, pool_name = self.pool.observe.label(), "replica set member reachable again; routed to");
        }
        let status = status?;
        self.observe.lag(status.lag);
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
        if was != status.role {
            self.observe.role_changed(status.role);
        }
        (was != status.role).then_some(was)
    }

    /// A read was routed here.
    pub(super) fn read_served(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.observe.read();
    }

    /// A write was routed here.
    pub(super) fn write_served(&self) {
        self.observe.write();
    }

    pub(crate) fn unreachable(&self) {
        if self.reachable.swap(false, Ordering::Relaxed) {
            self.observe.ejected();
            tracing::warn!(member = %self.pool.key, pool_name = self.pool.observe.label(), "replica set member unreachable; left out of routing");
        }
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

/// One member, as [`ReplicaSetHandle::topology`](crate::ReplicaSetHandle::topology) reports it.
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
    pub breaker: BreakerState,
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
    pub(crate) fn new(config: &ReplicaSetConfig, members: Vec<Arc<MemberState<B>>>) -> Self {
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
    pub(super) fn learn_home(&self) {
        if let Some(m) = self.members.read().first() {
            m.pool.home.learn();
        }
    }

    pub(super) fn snapshot(&self) -> (Vec<Arc<MemberState<B>>>, Vec<Member>) {
        let members = self.members.read().clone();
        let views = members.iter().map(|m| m.view()).collect();
        (members, views)
    }

    /// Route one read: the member picked for `request`, its index, and whether a retry
    /// after it fails would have somewhere else to go. The views are taken under the
    /// members' read lock into a buffer on the stack (no allocation for up to 8 members)
    /// and only the picked member is cloned out; no lock is held once this returns.
    pub(super) fn route_read(
        &self,
        request: &ReadRequest,
    ) -> Option<(Arc<MemberState<B>>, usize, bool)> {
        const ON_STACK: usize = 8;
        let members = self.members.read();
        let mut rng = rand::rng();
        let pick = if members.len() <= ON_STACK {
            let mut views = [Member::default(); ON_STACK];
            for (view, m) in views.iter_mut().zip(members.iter()) {
                *view = m.view();
            }
            self.router
                .lock()
                .pick(&views[..members.len()], request, &mut rng)
        } else {
            let views: Vec<Member> = members.iter().map(|m| m.view()).collect();
            self.router.lock().pick(&views, request, &mut rng)
        }?;
        Some((
            Arc::clone(&members[pick.index]),
            pick.index,
            pick.alternative,
        ))
    }
}
