//! Messages a replica-set actor answers (membership, topology) and the role-change event
//! it publishes. Registering a set is a message to the supervisor.

use actix::Message;
use tokio::time::Instant;

use super::members::MemberInfo;
use crate::backends::Role;
use crate::connection::ConnectionConfig;
use crate::error::Error;
use crate::key::PoolKey;

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
