//! Messages about replica sets: registration (to the supervisor), membership and
//! topology (to a replica-set actor), and role-change events.

use std::marker::PhantomData;

use actix::{Message, Recipient};
use tokio::time::Instant;

use crate::backend::Backend;
use crate::config::connection::ConnectionConfig;
use crate::config::replica_set::ReplicaSetConfig;
use crate::error::Error;
use crate::key::PoolKey;
use crate::replica_set::{MemberInfo, ReplicaSetHandle};
use crate::router::Role;

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

/// Every member's role, health and load.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<MemberInfo>")]
pub struct Topology;

/// Add a member at run time. Answers its pool key.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PoolKey, Error>")]
pub struct AddMember {
    /// Where to connect.
    pub connection: ConnectionConfig,
    /// Its role until the first topology probe says otherwise.
    pub role: Role,
}

/// Remove a member at run time; its pool is drained and stopped. Answers whether it was
/// a member.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "bool")]
pub struct RemoveMember {
    /// The member's pool key.
    pub key: PoolKey,
}

/// A member changed role (failover, promotion, demotion).
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct RoleChanged {
    /// The set.
    pub set: String,
    /// The member's pool.
    pub key: PoolKey,
    /// The member's `host:port`.
    pub host: String,
    /// Before.
    pub from: Role,
    /// After.
    pub to: Role,
    /// When it was seen.
    pub at: Instant,
}

/// Deliver every [`RoleChanged`] of every replica set to `0` (bounded mailbox; a full
/// one drops the event with a warning).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SubscribeTopology(pub Recipient<RoleChanged>);
