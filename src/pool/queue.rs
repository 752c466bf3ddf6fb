//! Waiting in the queue: what an acquire that cannot be served at once goes through,
//! whatever it waits for (a slot, the pause gate): the `max_waiters` bound, the count, the
//! deadline, and how a pool that stops serving ends the wait.

use std::future::Future;
use std::sync::atomic::{fence, Ordering};

use tokio::time::{timeout_at, Instant};

use super::gauge::Entered;
use super::shared::{PoolShared, Slot};
use crate::backends::Backend;
use crate::error::{Error, Phase};

impl<B: Backend> PoolShared<B> {
    /// Count one more queued acquire until the guard drops, or refuse it with
    /// `PoolSaturated` past `max_waiters`. After it, a pool that stops serving either is
    /// seen by [`check_open`](Self::check_open) or counts this waiter when it wakes them
    /// (a failure floods the slots with one permit per waiter).
    pub(super) fn enter_queue(&self) -> Result<Entered<'_>, Error> {
        let (queued, entered) = self.hot.queue();
        if queued >= self.config.max_waiters {
            self.observe.saturated();
            return Err(Error::PoolSaturated {
                key: self.key,
                waiters: queued,
            });
        }
        // Pairs with the fence in `record_restart`: the failing side reads the count after
        // its state change, this side the state after its count change.
        fence(Ordering::SeqCst);
        self.check_open()?;
        Ok(entered)
    }

    /// Wait for a slot as a queued acquire: FIFO on the semaphore alone, until `deadline`
    /// (`Timeout` in phase `Wait`) or until the pool stops serving (its closed error: a
    /// close closes the semaphore, a failure wakes every waiter with a surplus permit).
    /// Cancel safe: dropping this leaves the queue.
    pub(super) async fn wait_for_slot(
        &self,
        start: Instant,
        deadline: Instant,
    ) -> Result<Slot<'_, B>, Error> {
        let _queued = self.enter_queue()?;
        let wait = async {
            loop {
                match self.slot().await {
                    Ok(Some(slot)) => return Ok(slot),
                    Ok(None) => self.check_open()?,
                    Err(_) => return Err(self.closed_error()),
                }
            }
        };
        match timeout_at(deadline, wait).await {
            Ok(done) => done,
            Err(_) => Err(self.timed_out(start, Phase::Wait, None)),
        }
    }

    /// Wait for `fut` as a queued acquire (the pause gate): counted as a waiter, refused
    /// past `max_waiters`, ended when the pool stops serving (its closed error) and at
    /// `deadline` (`Timeout` in phase `Wait`). Cancel safe as `fut` is.
    pub(super) async fn queued<F: Future>(
        &self,
        start: Instant,
        deadline: Instant,
        fut: F,
    ) -> Result<F::Output, Error> {
        let _queued = self.enter_queue()?;
        let wait = async {
            let mut fut = std::pin::pin!(fut);
            loop {
                // Registered before the state is read, so a change in between is not missed.
                let mut changed = std::pin::pin!(self.hot.changed());
                changed.as_mut().enable();
                if !self.hot.is_open() {
                    return None;
                }
                tokio::select! {
                    biased;
                    done = &mut fut => return Some(done),
                    () = &mut changed => {}
                }
            }
        };
        match timeout_at(deadline, wait).await {
            Ok(Some(done)) => Ok(done),
            Ok(None) => Err(self.closed_error()),
            Err(_) => Err(self.timed_out(start, Phase::Wait, None)),
        }
    }
}
