//! The members of a replica set as routing sees them: each member's pool with its role,
//! lag, position and reachability (kept up to date by the replica-set actor's topology
//! probes), and the set's shared state that reads and writes route over.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, WeakAddr};
use arc_swap::{ArcSwap, Guard};
use serde::Serialize;
use tokio::sync::Notify;

use super::config::ReplicaSetConfig;
use super::draws::Draws;
use super::router::{Pick, ReadRequest, Router, Strategy, View};
use super::slow_start::SlowStart;
use crate::backends::{Backend, MemberStatus, Role};
use crate::connection::ConnectionConfig;
use crate::key::PoolKey;
use crate::observe::member::MemberObserver;
use crate::policy::breaker::BreakerState;
use crate::pool::actor::PoolActor;
use crate::pool::config::PoolConfig;
use crate::pool::factory::PoolFactory;
use crate::pool::home::Home;
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
    slow_start: SlowStart,
    /// Written by every read it serves: on a cache line of its own, so the routing fields
    /// beside it, which every read of the set loads, stay shared.
    reads: Padded,
    actor: Option<WeakAddr<PoolActor<B>>>,
    /// Its `poolwarden.replica_set.*` series.
    pub(crate) observe: MemberObserver,
}

/// An atomic counter alone on its cache line (128 bytes: two lines prefetched together on
/// x86-64).
#[repr(align(128))]
struct Padded(AtomicU64);

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
    /// `slow_start`: the set's slow-start window.
    pub(crate) fn spawn(
        factory: &PoolFactory<B>,
        set: &str,
        key: PoolKey,
        connection: ConnectionConfig,
        role: Role,
        config: PoolConfig,
        slow_start: Duration,
    ) -> (Addr<PoolActor<B>>, Arc<Self>) {
        let mut factory = factory.clone();
        factory.name = Some(format!("{set}/{}", connection.primary_host()));
        let (addr, pool) = factory.spawn(key, connection, config);
        let observe = MemberObserver::new(pool.observe.label(), set);
        let member = Self::new(pool, role, observe, slow_start).with_actor(addr.downgrade());
        (addr, Arc::new(member))
    }

    fn new(
        pool: Arc<PoolShared<B>>,
        role: Role,
        observe: MemberObserver,
        slow_start: Duration,
    ) -> Self {
        Self {
            pool,
            role: AtomicU8::new(role_code(role)),
            lag_ms: AtomicU64::new(UNKNOWN),
            position: AtomicU64::new(UNKNOWN),
            primary_since: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
            slow_start: SlowStart::new(slow_start),
            reads: Padded(AtomicU64::new(0)),
            actor: None,
            observe,
        }
    }

    fn with_actor(mut self, actor: WeakAddr<PoolActor<B>>) -> Self {
        self.actor = Some(actor);
        self
    }

    /// A member added at run time: its reads ramp up over its set's slow-start window.
    pub(crate) fn warm_up(&self) {
        self.slow_start.begin();
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

    /// Reachable at the last probe, its pool serving (breaker not open, healthy) and open.
    fn is_usable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed) && self.pool.serving() && !self.pool.is_closed()
    }

    fn lag_now(&self) -> Option<Duration> {
        let lag = self.lag_ms.load(Ordering::Relaxed);
        (lag != UNKNOWN).then(|| Duration::from_millis(lag))
    }

    fn replayed_now(&self) -> Option<u64> {
        let position = self.position.load(Ordering::Relaxed);
        (position != UNKNOWN).then_some(position)
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
        self.reads.0.fetch_add(1, Ordering::Relaxed);
        self.observe.read();
    }

    /// A write was routed here.
    pub(super) fn write_served(&self) {
        self.observe.write();
    }

    pub(crate) fn unreachable(&self) {
        if self.reachable.swap(false, Ordering::Relaxed) {
            self.slow_start.left_out();
            self.observe.ejected();
            tracing::warn!(member = %self.pool.key, pool_name = self.pool.observe.label(), "replica set member unreachable; left out of routing");
        }
    }

    pub(crate) fn info(&self) -> MemberInfo {
        let stats = self.pool.stats();
        MemberInfo {
            key: self.pool.key,
            host: self.pool.connection.primary_host(),
            role: self.role(),
            usable: self.is_usable(),
            lag: self.lag_now(),
            position: self.replayed_now(),
            breaker: stats.breaker,
            in_use: stats.in_use,
            idle: stats.idle,
            reads: self.reads.0.load(Ordering::Relaxed),
        }
    }
}

/// Routing's view of a member, read live from its atomics and its pool's as the pick asks.
impl<B: Backend> View for Arc<MemberState<B>> {
    #[inline]
    fn role(&self) -> Role {
        MemberState::role(self)
    }

    /// Reachable and its pool serving. Not whether the pool is closed: that flag shares a
    /// cache line with the counters every acquire of that pool writes, and a closed pool
    /// (a member just removed, seen in an older snapshot, or a set shutting down) answers
    /// the acquire at once with an error a read retries elsewhere.
    #[inline]
    fn usable(&self) -> bool {
        let usable = self.reachable.load(Ordering::Relaxed) && self.pool.serving();
        if !usable {
            // Its return, seen by a later pick, starts a warm-up.
            self.slow_start.left_out();
        }
        usable
    }

    fn lag(&self) -> Option<Duration> {
        self.lag_now()
    }

    #[inline]
    fn load(&self) -> usize {
        self.pool.load()
    }

    fn replayed(&self) -> Option<u64> {
        self.replayed_now()
    }

    fn primary_since(&self) -> u64 {
        self.primary_since.load(Ordering::Relaxed)
    }

    #[inline]
    fn warming(&self) -> Option<u16> {
        self.slow_start.share()
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

/// The member list: swapped whole when a member is added or removed (by the replica-set
/// actor), so a read takes a snapshot of it without a lock or a shared reference count
/// (`arc-swap`: a slot of the reading thread's own).
pub(crate) struct Members<B: Backend>(ArcSwap<Vec<Arc<MemberState<B>>>>);

/// A snapshot of the members, as a read or a write routes over it.
pub(crate) type Snapshot<B> = Guard<Arc<Vec<Arc<MemberState<B>>>>>;

impl<B: Backend> Members<B> {
    fn new(members: Vec<Arc<MemberState<B>>>) -> Self {
        Self(ArcSwap::from_pointee(members))
    }

    /// The members now. Meant to be held for one operation: members removed meanwhile
    /// stay alive (and their pools open to it) until it is dropped.
    #[inline]
    pub(crate) fn read(&self) -> Snapshot<B> {
        self.0.load()
    }

    pub(super) fn push(&self, member: Arc<MemberState<B>>) {
        self.0.rcu(|v| {
            let mut v = Vec::clone(v);
            v.push(Arc::clone(&member));
            v
        });
    }

    /// Remove the member whose pool is `key`; answers it.
    pub(super) fn remove(&self, key: PoolKey) -> Option<Arc<MemberState<B>>> {
        let mut removed = None;
        self.0.rcu(|v| {
            let mut v = Vec::clone(v);
            removed = v
                .iter()
                .position(|m| m.pool.key == key)
                .map(|i| v.remove(i));
            v
        });
        removed
    }
}

pub(crate) struct SetShared<B: Backend> {
    pub(crate) name: String,
    pub(crate) strategy: Strategy,
    pub(crate) max_lag: Option<Duration>,
    pub(crate) fallback_to_primary: bool,
    /// Slow start's window, for the members added at run time.
    pub(crate) slow_start_window: Duration,
    pub(crate) members: Members<B>,
    /// The round-robin turn. Loaded and stored, not incremented: two reads on two threads
    /// at the same moment may take the same turn, which costs the spread nothing that
    /// matters and every read a contended read-modify-write less.
    cursor: AtomicUsize,
    /// The supervisor's `Home`, which every member pool shares.
    home: Arc<Home>,
    /// Woken after every member probe of the replica-set actor.
    pub(crate) changed: Notify,
}

impl<B: Backend> SetShared<B> {
    /// `members`: at least the primary.
    pub(crate) fn new(config: &ReplicaSetConfig, members: Vec<Arc<MemberState<B>>>) -> Self {
        let home = Arc::clone(&members.first().expect("a set has a primary").pool.home);
        Self {
            name: config.name.clone(),
            strategy: config.strategy,
            max_lag: config.max_lag,
            fallback_to_primary: config.fallback_to_primary,
            slow_start_window: config.slow_start_window,
            members: Members::new(members),
            cursor: AtomicUsize::new(0),
            home,
            changed: Notify::new(),
        }
    }

    /// A caller is here: teach the supervisor's pools this runtime (`pool/home.rs`).
    #[inline]
    pub(super) fn learn_home(&self) {
        self.home.learn();
    }

    /// The index in `members` of the member writes go to.
    pub(super) fn route_write(&self, members: &[Arc<MemberState<B>>]) -> Option<usize> {
        super::router::primary(members)
    }

    /// Route one read over `members` (a snapshot): the member picked for `request`, by its
    /// index, and whether a retry after it fails would have somewhere else to go.
    pub(super) fn route_read(
        &self,
        members: &[Arc<MemberState<B>>],
        request: &ReadRequest,
    ) -> Option<Pick> {
        let cursor = self.cursor.load(Ordering::Relaxed);
        let mut router = Router::at(cursor);
        let pick = router.pick(members, request, &mut Draws);
        if router.cursor() != cursor {
            self.cursor.store(router.cursor(), Ordering::Relaxed);
        }
        pick
    }
}
