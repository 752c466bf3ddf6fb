//! Replica sets: a primary and its replicas, one pool per member. Reads and writes are
//! routed in the caller's task (`handle.rs` over `members.rs`, picked by the pure
//! `router.rs`, a readmitted or added replica ramped up by `slow_start.rs`); the replica-set
//! actor (`actor.rs`) owns the member pools and keeps roles, lag and membership up to date.

pub(crate) mod actor;
pub(crate) mod candidates;
pub(crate) mod config;
pub(crate) mod draws;
pub(crate) mod handle;
pub(crate) mod members;
pub(crate) mod messages;
pub(crate) mod router;
pub(crate) mod slow_start;
pub(crate) mod strategy;
