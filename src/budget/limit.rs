//! One limit (an endpoint's or the total): a FIFO semaphore with one permit per connection
//! it allows, the pools holding its permits, and the callers waiting for one — on whose
//! behalf idle connections are closed, least recently used first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, Semaphore};

use super::IdleSource;
use crate::key::PoolKey;

/// One pool's account with the budget: how many permits it holds, and where to find its
/// idle connections.
pub(crate) struct Holder {
    pub(super) key: PoolKey,
    pub(super) held: AtomicUsize,
    pub(super) source: OnceLock<Weak<dyn IdleSource>>,
}

impl Holder {
    pub(super) fn new(key: PoolKey) -> Self {
        Self {
            key,
            held: AtomicUsize::new(0),
            source: OnceLock::new(),
        }
    }

    fn source(&self) -> Option<Arc<dyn IdleSource>> {
        self.source.get().and_then(Weak::upgrade)
    }

    /// Gone for good: its pool was dropped and it holds nothing.
    fn gone(&self) -> bool {
        self.source.get().is_some_and(|s| s.strong_count() == 0)
            && self.held.load(Ordering::Acquire) == 0
    }
}

pub(crate) struct Limit {
    pub(super) limit: u32,
    pub(super) permits: Arc<Semaphore>,
    holders: Mutex<Vec<Arc<Holder>>>,
    /// Callers queued for a permit: a returned idle connection wakes them (`nudge`).
    waiting: AtomicUsize,
    nudged: Notify,
}

impl Limit {
    pub(super) fn new(limit: u32) -> Self {
        Self {
            limit,
            permits: Arc::new(Semaphore::new(limit as usize)),
            holders: Mutex::new(Vec::new()),
            waiting: AtomicUsize::new(0),
            nudged: Notify::new(),
        }
    }

    /// Permits taken: connections open (or opening) under this limit.
    pub(super) fn used(&self) -> usize {
        (self.limit as usize).saturating_sub(self.permits.available_permits())
    }

    pub(super) fn join(&self, holder: Arc<Holder>) {
        let mut holders = self.holders.lock();
        holders.retain(|h| !h.gone());
        holders.push(holder);
    }

    /// Permits held, by pool key (pools whose permits are all returned left out).
    pub(super) fn holders(&self) -> Vec<(PoolKey, usize)> {
        let mut by_key = BTreeMap::new();
        let mut holders = self.holders.lock();
        holders.retain(|h| !h.gone());
        for h in holders.iter() {
            let n = h.held.load(Ordering::Acquire);
            if n > 0 {
                *by_key.entry(h.key).or_insert(0) += n;
            }
        }
        by_key.into_iter().collect()
    }

    /// A caller queues here until the guard drops.
    pub(super) fn enter(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        Waiting(Arc::clone(self))
    }

    /// Resolves at the next [`nudge`](Self::nudge); enable it before looking for idle
    /// connections so that one filed in between is not missed.
    pub(super) fn nudged(&self) -> Notified<'_> {
        self.nudged.notified()
    }

    /// An idle connection was filed under this limit: waiters look for one to close.
    #[inline]
    pub(super) fn nudge(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.nudged.notify_waiters();
        }
    }

    /// Close the least recently used idle connection of the pools under this limit.
    /// Answers whether one was closed.
    pub(super) fn evict_lru(&self) -> bool {
        // A pool may lose its oldest connection to a checkout between the look and the
        // close: look again a few times.
        for _ in 0..4 {
            let sources: Vec<_> = self
                .holders
                .lock()
                .iter()
                .filter_map(|h| h.source())
                .collect();
            let victim = sources
                .iter()
                .filter_map(|s| s.oldest_idle().map(|at| (at, s)))
                .min_by_key(|(at, _)| *at);
            match victim {
                None => return false,
                Some((_, source)) if source.close_oldest_idle() => return true,
                Some(_) => {}
            }
        }
        false
    }
}

/// A caller counted as waiting on a limit until dropped.
pub(crate) struct Waiting(pub(super) Arc<Limit>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}
