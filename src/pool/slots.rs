//! The pool's slots: one permit per connection that may be checked out or opening (FIFO
//! for waiters), the debt a shrinking resize leaves, the surplus a failure adds to wake
//! the waiters, and the sizes themselves.
//!
//! A waiter parks on the semaphore alone (no second notification, no `select!`). To tell
//! it that the pool failed, [`flood`](Slots::flood) adds one permit per waiter and counts
//! them as *surplus*: whoever takes a permit while there is surplus swallows it (the taker
//! learns it was woken, not served) and looks at the pool's state. Permits are fungible,
//! so the count is what matters: free + taken − surplus − shrink debt is always the size.
//! [`settle`](Slots::settle) forgets the surplus still free when the pool is revived.
//!
//! Free permits live in an atomic count while nobody waits: taking one is a
//! compare-and-swap and giving one back an add, where tokio's semaphore takes its waiter
//! lock on every release (~75 of ~830 instructions per acquire + release under
//! callgrind, and a lock the cores pass around). A waiter counts itself as parked, then
//! looks at the count, then parks on the semaphore; a release adds to the count, then
//! looks for parked waiters and moves what it added to the semaphore, which hands permits
//! out in FIFO order. Both sides fence between their write and their read, so a release
//! either is seen by the waiter or sees it: no waiter sleeps while a permit is free.

use std::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};

use tokio::sync::{AcquireError, Notify, Semaphore, TryAcquireError};

use super::gauge::Gauge;

/// Set in `free` once the slots are closed: no permit is taken from it after that.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// What a wait for a slot ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    /// A slot is held.
    Slot,
    /// Woken by [`Slots::flood`]: no slot held.
    Woken,
}

pub(crate) struct Slots {
    /// Free permits nobody waits for (and [`CLOSED`] once closed).
    free: AtomicUsize,
    /// Waiters that may park on `permits`.
    parked: Gauge,
    /// Where waiters park; permits are moved here for them.
    permits: Semaphore,
    /// Permits to swallow as they come back, after a shrinking resize.
    shrink_debt: AtomicUsize,
    /// Permits added by [`flood`](Slots::flood) to wake waiters, not yet swallowed by a
    /// taker or forgotten by [`settle`](Slots::settle).
    surplus: AtomicUsize,
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
            free: AtomicUsize::new(max_size as usize + overflow as usize),
            parked: Gauge::default(),
            permits: Semaphore::new(0),
            shrink_debt: AtomicUsize::new(0),
            surplus: AtomicUsize::new(0),
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

    /// Take a free slot without waiting. A surplus permit is swallowed: no slot.
    #[inline]
    pub(super) fn try_take(&self) -> Result<(), TryAcquireError> {
        if !take_one(&self.free) {
            // Permits moved to the semaphore for waiters that have not taken them yet
            // (or an error: the slots are closed).
            self.permits.try_acquire()?.forget();
        }
        if self.swallow() {
            return Err(TryAcquireError::NoPermits);
        }
        Ok(())
    }

    /// Wait for a slot, in FIFO order with the other waiters. [`Taken::Woken`]: the
    /// permit was surplus (a failure woke this waiter), so no slot is held: look at the
    /// pool's state, and wait again if it still serves. Cancel safe (tokio's `acquire`).
    pub(super) async fn take(&self) -> Result<Taken, AcquireError> {
        let (_, _parked) = self.parked.enter();
        // Pairs with the fence in `publish`.
        fence(Ordering::SeqCst);
        if !take_one(&self.free) {
            self.permits.acquire().await?.forget();
        }
        Ok(if self.swallow() {
            Taken::Woken
        } else {
            Taken::Slot
        })
    }

    /// A permit just taken pays one of the surplus, or of a shrink's debt (a permit a
    /// cancelled waiter handed back while the pool shrank), if there is any.
    #[inline]
    fn swallow(&self) -> bool {
        // The permit's semaphore synchronises with `flood`'s `add_permits`, which comes
        // after its surplus increment: a flooded permit always sees its surplus.
        (self.surplus.load(Ordering::Acquire) > 0 || self.shrink_debt.load(Ordering::Acquire) > 0)
            && (take_one(&self.surplus) || take_one(&self.shrink_debt))
    }

    /// Wake `waiters` queued waiters (the pool failed): one surplus permit each. Extra
    /// permits (a waiter that left meanwhile) are swallowed by the next taker or
    /// forgotten by [`settle`](Self::settle).
    pub(super) fn flood(&self, waiters: usize) {
        if waiters == 0 {
            return;
        }
        self.surplus.fetch_add(waiters, Ordering::AcqRel);
        self.permits.add_permits(waiters);
    }

    /// Forget the surplus permits still free (the pool is revived); the rest are
    /// swallowed by whoever takes them.
    pub(super) fn settle(&self) {
        // Claim first, then forget, then hand back what could not be forgotten: a
        // concurrent `swallow` never pays for a permit this call also forgets.
        let claimed = self.surplus.swap(0, Ordering::AcqRel);
        let forgotten = self.permits.forget_permits(claimed);
        if claimed > forgotten {
            self.surplus
                .fetch_add(claimed - forgotten, Ordering::AcqRel);
        }
    }

    /// Give a slot back (or swallow it, to pay a shrink). `open`: whether the pool still
    /// serves; if not, shutdown is told.
    #[inline]
    pub(super) fn give_back(&self, open: bool) {
        if take_one(&self.shrink_debt) {
            return self.returned.notify_waiters();
        }
        self.publish(1);
        if !open {
            self.returned.notify_waiters();
        }
    }

    /// Make `n` permits free: to the count, then as many as there are parked waiters on
    /// to the semaphore, where they wait.
    #[inline]
    fn publish(&self, n: usize) {
        self.free.fetch_add(n, Ordering::AcqRel);
        // Pairs with the fence in `take`.
        fence(Ordering::SeqCst);
        let parked = self.parked.get();
        if parked > 0 {
            let moved = take_up_to(&self.free, parked.min(n));
            if moved > 0 {
                self.permits.add_permits(moved);
            }
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
        self.free.fetch_or(CLOSED, Ordering::AcqRel);
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
            self.publish(grow);
            false
        } else if new < old {
            let shrink = old - new;
            let from_free = take_up_to(&self.free, shrink);
            let forgotten = from_free + self.permits.forget_permits(shrink - from_free);
            self.shrink_debt
                .fetch_add(shrink - forgotten, Ordering::AcqRel);
            true
        } else {
            false
        }
    }
}

/// Take one off `count` if it is above zero (and not [`CLOSED`]); answers whether it did.
#[inline]
fn take_one(count: &AtomicUsize) -> bool {
    take_up_to(count, 1) == 1
}

/// Take up to `n` off `count` (nothing once [`CLOSED`]); answers how many.
#[inline]
fn take_up_to(count: &AtomicUsize, n: usize) -> usize {
    let mut c = count.load(Ordering::Acquire);
    loop {
        if c & CLOSED != 0 {
            return 0;
        }
        let k = c.min(n);
        if k == 0 {
            return 0;
        }
        match count.compare_exchange_weak(c, c - k, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return k,
            Err(now) => c = now,
        }
    }
}

#[cfg(test)]
#[path = "slots_props.rs"]
mod props;
