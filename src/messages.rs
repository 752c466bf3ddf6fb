//! The protocol on one page: every message the supervisor, the pool actors and the
//! replica-set actors answer, and the events they publish. Each is defined beside the
//! actor that handles it (`supervisor/messages.rs`, `pool/messages.rs`,
//! `replica_set/messages.rs`, `supervisor/events.rs`); this module only re-exports them.
//!
//! | to | messages |
//! |---|---|
//! | [`Supervisor`](crate::Supervisor) | [`GetPool`], [`Register`], [`Lookup`], [`Acquire`], [`Contains`], [`ListPools`], [`GetStats`], [`HealthCheck`], [`ReapIdle`], [`RevivePool`], [`Shutdown`], [`Subscribe`], [`RegisterReplicaSet`], [`LookupReplicaSet`], [`ListReplicaSets`], [`SubscribeTopology`] |
//! | [`PoolActor`](crate::PoolActor) | [`Warm`], [`Resize`], [`GetPoolStats`], [`GetLeaks`], [`Probe`], [`Release`], [`Revive`], [`Close`] |
//! | [`ReplicaSetActor`](crate::ReplicaSetActor) | [`Topology`], [`AddMember`], [`RemoveMember`], [`Close`] |
//! | subscribers | [`BreakerTransition`], [`RoleChanged`] |
//!
//! The supervisor also answers [`GetPoolWithHooks`] (a pool with [`Hooks`](crate::Hooks)).

pub use crate::pool::messages::{
    Close, GetLeaks, GetPoolStats, Probe, Release, Resize, Revive, Warm,
};
pub use crate::replica_set::messages::{AddMember, RemoveMember, RoleChanged, Topology};
pub use crate::supervisor::events::{BreakerTransition, Subscribe};
pub use crate::supervisor::inventory::{Contains, ListPools, PoolListing};
pub use crate::supervisor::messages::GetPoolWithHooks;
pub use crate::supervisor::messages::{
    Acquire, GetPool, GetStats, HealthCheck, ListReplicaSets, Lookup, LookupReplicaSet, PoolRef,
    ReapIdle, Register, RegisterReplicaSet, RevivePool, Shutdown, SubscribeTopology,
};
