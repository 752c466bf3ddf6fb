//! The pool's slots: one permit per connection that may be checked out or opening (FIFO
//! for waiters), the debt a shrinking resize leaves, and the sizes themselves.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use tokio::sync::{AcquireError, Notify, Semaphore, TryAcquireError};

pub(crate) struct Slots {
    permits: Semaphore,
    /// Permits to swallow as they come back, after a shrinking resize.
    shrink_debt: AtomicUsize,
    max_size: AtomicU32,
    min_idle: AtomicU32,
    overflow: u32,
    /// A slot came back while the pool was not open, or a debt was paid: what shutdown
    /// waits on.
    returned: Notify,
}

impl Slots {
    pub(super) fn new(max_size: u32, min_idle: u32, overflow: u32) -> Self {
        Self {
            permits: Semaphore::new(max_size as usize + overflow as usize),
            shrink_debt: AtomicUsize::new(0),
            max_size: AtomicU32::new(max_size),
            min_idle: AtomicU32::new(min_idle),
            overflow,
            returned: Notify::new(),
        }
    }

    #[inline]
    pub(crate) fn max_size(&self) -> usize {
        self.max_size.load(Ordering::Relaxed) as usize
    }

    #[inline]
    pub(crate) fn min_idle(&self) -> usize {
        self.min_idle.load(Ordering::Relaxed) as usize
    }

    /// A returned connection must be closed to pay a shrinking resize's debt.
    #[inline]
    pub(super) fn shrinking(&self) -> bool {
        self.shrink_debt.load(Ordering::Relaxed) > 0
    }

    /// Take a free slot without waiting.
    #[inline]
    pub(super) fn try_take(&self) -> Result<(), TryAcquireError> {
        self.permits.try_acquire().map(|p| p.forget())
    }

    /// Wait for a slot, in FIFO order with the other waiters.
    pub(super) async fn take(&self) -> Result<(), AcquireError> {
        self.permits.acquire().await.map(|p| p.forget())
    }

    /// Give a slot back (or swallow it, to pay a shrink). `open`: whether the pool still
    /// serves; if not, shutdown is told.
    #[inline]
    pub(super) fn give_back(&self, open: bool) {
        let mut debt = self.shrink_debt.load(Ordering::Relaxed);
        while debt > 0 {
            match self.shrink_debt.compare_exchange_weak(
                debt,
                debt - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.returned.notify_waiters(),
                Err(d) => debt = d,
            }
        }
        self.permits.add_permits(1);
        if !open {
            self.returned.notify_waiters();
        }
    }

    /// Resolves when a slot comes back to a pool that no longer serves.
    pub(super) fn returned(&self) -> tokio::sync::futures::Notified<'_> {
        self.returned.notified()
    }

    /// Wake whoever waits for returns (shutdown).
    pub(super) fn wake_returned(&self) {
        self.returned.notify_waiters();
    }

    /// Waiters and new acquires get an error from now on.
    pub(super) fn close(&self) {
        self.permits.close();
    }

    /// Change the sizes. Growing first cancels pending shrinkage; shrinking forgets free
    /// permits and owes the rest, paid as slots come back. Answers whether it shrank.
    pub(super) fn resize(&self, max_size: u32, min_idle: u32) -> bool {
        let overflow = self.overflow as usize;
        let old = self.max_size.swap(max_size, Ordering::AcqRel) as usize + overflow;
        self.min_idle.store(min_idle, Ordering::Relaxed);
        let new = max_size as usize + overflow;
        if new > old {
            let mut grow = new - old;
            while grow > 0 {
                let debt = self.shrink_debt.load(Ordering::Acquire);
                if debt == 0 {
                    break;
                }
                let pay = debt.min(grow);
                if self
                    .shrink_debt
                    .compare_exchange(debt, debt - pay, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    grow -= pay;
                }
            }
            self.permits.add_permits(grow);
            false
        } else if new < old {
            let shrink = old - new;
            let forgotten = self.permits.forget_permits(shrink);
            self.shrink_debt
                .fetch_add(shrink - forgotten, Ordering::AcqRel);
            true
        } else {
            false
        }
    }
}
