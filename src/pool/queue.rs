//! Waiting in the queue: what an acquire that cannot be served at once goes through,
//! whatever it waits for (a slot, the pause gate).

use std::future::Future;

use tokio::time::{timeout_at, Instant};

use super::shared::PoolShared;
use crate::backends::Backend;
use crate::error::{Error, Phase};

impl<B: Backend> PoolShared<B> {
    /// Wait for `fut` as a queued acquire: refused at once with `PoolSaturated` past
    /// `max_waiters`, counted as a waiter meanwhile, ended when the pool stops serving
    /// (its closed error) and at `deadline` (`Timeout` in phase `Wait`). Cancel safe as
    /// `fut` is: dropping this leaves the queue.
    pub(super) async fn queued<F: Future>(
        &self,
        start: Instant,
        deadline: Instant,
        fut: F,
    ) -> Result<F::Output, Error> {
        let (queued, _queued) = self.hot.queue();
        if queued >= self.config.max_waiters {
            self.observe.saturated();
            return Err(Error::PoolSaturated {
                key: self.key,
                waiters: queued,
            });
        }
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
