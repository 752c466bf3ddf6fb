//! Events published to subscribers, and the one fan-out every kind of event goes through.

use std::sync::Arc;

use actix::prelude::*;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::key::PoolKey;
use crate::policy::breaker::BreakerState;

/// Subscribers of one kind of event. Delivery uses each subscriber's bounded mailbox: a
/// full one drops the event (counted in the warning), a closed one is forgotten. Never
/// blocks the publisher.
pub(crate) struct Subscribers<E: Message<Result = ()> + Send> {
    list: Arc<Mutex<Vec<Recipient<E>>>>,
    what: &'static str,
}

impl<E: Message<Result = ()> + Send> Clone for Subscribers<E> {
    fn clone(&self) -> Self {
        Self {
            list: Arc::clone(&self.list),
            what: self.what,
        }
    }
}

impl<E> Subscribers<E>
where
    E: Message<Result = ()> + Clone + Send + 'static,
{
    /// `what` names the events in warnings ("breaker", "topology").
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            list: Arc::default(),
            what,
        }
    }

    pub(crate) fn add(&self, subscriber: Recipient<E>) {
        self.list.lock().push(subscriber);
    }

    pub(crate) fn publish(&self, event: E) {
        self.list
            .lock()
            .retain(|r| match r.try_send(event.clone()) {
                Ok(()) => true,
                Err(SendError::Full(_)) => {
                    tracing::warn!(events = self.what, "subscriber mailbox full; event dropped");
                    true
                }
                Err(SendError::Closed(_)) => false,
            });
    }
}

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
