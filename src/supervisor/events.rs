//! Events published to subscribers.

use actix::{Message, Recipient};
use tokio::time::Instant;

use crate::breaker::BreakerState;
use crate::key::PoolKey;

/// A pool's circuit breaker changed state.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct BreakerTransition {
    /// The pool (one endpoint).
    pub key: PoolKey,
    /// Before.
    pub from: BreakerState,
    /// After.
    pub to: BreakerState,
    /// Why, for people (never contains a password).
    pub reason: String,
    /// When.
    pub at: Instant,
}

/// Deliver every [`BreakerTransition`] of every pool to `0`. Delivery uses the
/// subscriber's bounded mailbox; a full mailbox drops the event (with a warning).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<BreakerTransition>);
