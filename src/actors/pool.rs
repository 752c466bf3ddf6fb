//! The pool actor: one per pool key, run under an actix `Supervisor`. It owns the pool's
//! lifecycle (warm-up, maintenance, probes, resizing, restarts); acquire and release do not
//! pass through it.

use std::sync::Arc;

use actix::prelude::*;

use crate::backend::Backend;
use crate::error::{ConfigError, Error};
use crate::messages::pool::{Close, Crashed, GetPoolStats, Probe, Release, Resize, Warm};
use crate::pool::core::PoolShared;
use crate::stats::PoolStats;

/// Supervises one pool. Started by the [`Supervisor`](crate::Supervisor).
pub struct PoolActor<B: Backend> {
    pub(crate) shared: Arc<PoolShared<B>>,
}

impl<B: Backend> PoolActor<B> {
    pub(crate) fn new(shared: Arc<PoolShared<B>>) -> Self {
        Self { shared }
    }
}

impl<B: Backend> Actor for PoolActor<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.shared.is_closed() {
            // Closed while an address was still held: stay inert until it is dropped.
            return;
        }
        // Report backend panics to ourselves, at most one outstanding report per incarnation.
        let me = ctx.address().downgrade();
        let reported = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.shared
            .set_crash_hook(Some(Box::new(move |phase, message| {
                if !reported.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    if let Some(addr) = me.upgrade() {
                        addr.do_send(Crashed {
                            phase,
                            message: message.to_string(),
                        });
                    }
                }
            })));
        let shared = Arc::clone(&self.shared);
        ctx.spawn(
            async move { shared.refill().await }
                .into_actor(self)
                .map(|_, _, _| ()),
        );
        ctx.run_interval(self.shared.config.maintenance_interval, |act, ctx| {
            act.shared.reap();
            let shared = Arc::clone(&act.shared);
            ctx.spawn(
                async move { shared.refill().await }
                    .into_actor(act)
                    .map(|_, _, _| ()),
            );
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_crash_hook(None);
    }
}

impl<B: Backend> Supervised for PoolActor<B> {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        if self.shared.is_closed() {
            return;
        }
        let generation = self.shared.new_generation();
        tracing::warn!(pool = %self.shared.key, generation, "pool actor restarted");
    }
}

impl<B: Backend> Handler<Crashed> for PoolActor<B> {
    type Result = ();
    fn handle(&mut self, msg: Crashed, ctx: &mut Self::Context) {
        tracing::warn!(pool = %self.shared.key, phase = %msg.phase, panic = %msg.message, "stopping pool actor after a panic");
        ctx.stop();
    }
}

impl<B: Backend> Handler<Warm> for PoolActor<B> {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: Warm, _ctx: &mut Self::Context) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.warm(msg.target).await })
    }
}

impl<B: Backend> Handler<Resize> for PoolActor<B> {
    type Result = Result<(), Error>;
    fn handle(&mut self, msg: Resize, _ctx: &mut Self::Context) -> Self::Result {
        if msg.max_size == 0 {
            return Err(ConfigError::new("resize.max_size", "must be at least 1").into());
        }
        if msg.min_idle > msg.max_size {
            return Err(ConfigError::new("resize.min_idle", "must not exceed max_size").into());
        }
        self.shared.resize(msg.max_size, msg.min_idle);
        Ok(())
    }
}

impl<B: Backend> Handler<GetPoolStats> for PoolActor<B> {
    type Result = MessageResult<GetPoolStats>;
    fn handle(&mut self, _: GetPoolStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.shared.stats())
    }
}

impl<B: Backend> Handler<Probe> for PoolActor<B> {
    type Result = ResponseFuture<Result<(), String>>;
    fn handle(&mut self, msg: Probe, _ctx: &mut Self::Context) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.probe(msg.timeout).await })
    }
}

impl<B: Backend> Handler<Release<B>> for PoolActor<B> {
    type Result = ();
    fn handle(&mut self, msg: Release<B>, _ctx: &mut Self::Context) {
        if msg.broken {
            msg.conn.discard();
        } else {
            msg.conn.release();
        }
    }
}

impl<B: Backend> Handler<Close> for PoolActor<B> {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Self::Context) {
        self.shared.close(false);
        ctx.stop();
    }
}

/// Used by tests and the supervisor to read figures without a message.
impl<B: Backend> PoolActor<B> {
    /// The pool's figures.
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }
}
