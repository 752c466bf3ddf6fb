//! What a pool does with the budget: take a permit at once ([`PoolBudget::try_take`],
//! refills), queue for one ([`BudgetWait`], callers), and hold it in the connection
//! ([`BudgetPermit`]) until the connection is dropped, however that happens.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::limit::{Holder, Limit, Waiting};
use super::IdleSource;

/// One pool's view of the budget: its endpoint's limit (none for SQLite, or without
/// `max_connections_per_host`) and the total (none without `max_total_connections`).
/// A pool under neither has no `PoolBudget` at all.
#[derive(Clone)]
pub(crate) struct PoolBudget {
    pub(super) holder: Arc<Holder>,
    pub(super) endpoint: Option<(String, Arc<Limit>)>,
    pub(super) total: Option<Arc<Limit>>,
}

/// One connection's share of the budget: returned when dropped. It lives in the
/// connection's bookkeeping (`pool/conn.rs`), so every way a connection ends returns it.
pub(crate) struct BudgetPermit {
    _endpoint: Option<OwnedSemaphorePermit>,
    _total: Option<OwnedSemaphorePermit>,
    holder: Arc<Holder>,
}

impl BudgetPermit {
    fn new(
        holder: &Arc<Holder>,
        endpoint: Option<OwnedSemaphorePermit>,
        total: Option<OwnedSemaphorePermit>,
    ) -> Self {
        holder.held.fetch_add(1, Ordering::AcqRel);
        Self {
            _endpoint: endpoint,
            _total: total,
            holder: Arc::clone(holder),
        }
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        self.holder.held.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PoolBudget {
    /// Lend the pool's idle connections to waiters of its limits (once, after the pool is
    /// shared).
    pub(crate) fn bind(&self, source: Weak<dyn IdleSource>) {
        let _ = self.holder.source.set(source);
    }

    /// A permit now, or `None`: never ahead of a caller already queued (the queues are
    /// FIFO, and a free permit goes to the first in line before anyone can take it).
    pub(crate) fn try_take(&self) -> Option<BudgetPermit> {
        let endpoint = match &self.endpoint {
            Some((_, l)) => Some(Arc::clone(&l.permits).try_acquire_owned().ok()?),
            None => None,
        };
        let total = match &self.total {
            Some(l) => Some(Arc::clone(&l.permits).try_acquire_owned().ok()?),
            None => None,
        };
        Some(BudgetPermit::new(&self.holder, endpoint, total))
    }

    /// A place in the queues (the endpoint's, then the total's).
    pub(crate) fn wait(&self) -> BudgetWait {
        BudgetWait {
            budget: self.clone(),
            endpoint: None,
            pending: None,
            waiting: None,
            evict_due: true,
        }
    }

    /// An idle connection was filed: a caller waiting for room may close one.
    #[inline]
    pub(crate) fn nudge(&self) {
        if let Some((_, l)) = &self.endpoint {
            l.nudge();
        }
        if let Some(l) = &self.total {
            l.nudge();
        }
    }

    /// The limits, for an error message: "max_connections_per_host (4) of db:5432".
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((name, l)) = &self.endpoint {
            parts.push(format!("max_connections_per_host ({}) of {name}", l.limit));
        }
        if let Some(l) = &self.total {
            parts.push(format!("max_total_connections ({})", l.limit));
        }
        parts.join(" and ")
    }
}

type Acquiring = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// A caller's place in the budget's queues: the endpoint's first, then the total's.
/// Dropping it leaves the queue and gives back a permit taken halfway.
pub(crate) struct BudgetWait {
    budget: PoolBudget,
    /// The endpoint's permit, once taken (while queued for the total).
    endpoint: Option<OwnedSemaphorePermit>,
    pending: Option<Acquiring>,
    waiting: Option<Waiting>,
    /// Close an idle connection for room at the next look (on entering a queue and after
    /// each nudge).
    evict_due: bool,
}

impl BudgetWait {
    /// The limit waited on now: the endpoint's until its permit is taken, then the total.
    fn stage(&self) -> Option<&Arc<Limit>> {
        match (&self.budget.endpoint, &self.endpoint) {
            (Some((_, l)), None) => Some(l),
            _ => self.budget.total.as_ref(),
        }
    }

    /// Wait for a permit until `until`: `None` at `until`. While waiting, the least
    /// recently used idle connection under the limit waited on is closed to make room, at
    /// first and each time an idle connection is filed there.
    ///
    /// Cancel safe: the place in the queue is kept in `self`, so a dropped call followed
    /// by a new one waits on in the same place.
    pub(crate) async fn permit_by(&mut self, until: Instant) -> Option<BudgetPermit> {
        loop {
            let Some(limit) = self.stage().cloned() else {
                let endpoint = self.endpoint.take();
                return Some(BudgetPermit::new(&self.budget.holder, endpoint, None));
            };
            if self.pending.is_none() {
                self.pending = Some(Box::pin(Arc::clone(&limit.permits).acquire_owned()));
                self.waiting = Some(limit.enter());
                self.evict_due = true;
            }
            let nudged = limit.nudged();
            tokio::pin!(nudged);
            nudged.as_mut().enable();
            if std::mem::take(&mut self.evict_due) {
                limit.evict_lru();
            }
            let pending = self.pending.as_mut().expect("set above");
            tokio::select! {
                biased;
                permit = pending => {
                    self.pending = None;
                    self.waiting = None;
                    // Semaphores of the budget are never closed.
                    let permit = permit.ok()?;
                    if self.endpoint.is_none() && self.budget.endpoint.is_some() {
                        self.endpoint = Some(permit);
                        continue;
                    }
                    let endpoint = self.endpoint.take();
                    return Some(BudgetPermit::new(&self.budget.holder, endpoint, Some(permit)));
                }
                () = &mut nudged => self.evict_due = true,
                () = tokio::time::sleep_until(until) => return None,
            }
        }
    }
}
