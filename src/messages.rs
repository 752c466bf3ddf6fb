//! The protocol: every message the supervisor and the pool actors answer.

pub mod events;
pub mod pool;
pub mod replica_set;
pub mod supervisor;

pub use events::{BreakerTransition, Subscribe};
pub use pool::{Close, GetPoolStats, Probe, Release, Resize, Revive, Warm};
pub use replica_set::{
    AddMember, LookupReplicaSet, RegisterReplicaSet, RemoveMember, RoleChanged, SubscribeTopology,
    Topology,
};
pub use supervisor::{
    Acquire, GetPool, GetStats, HealthCheck, Lookup, PoolRef, ReapIdle, Register, RevivePool,
    Shutdown,
};
