//! The pool actor: one per pool key, run under an actix `Supervisor`. It owns the pool's
//! lifecycle (warm-up, restarts, resizing) and its entry in the supervisor's timetable,
//! which runs its maintenance and background probes when they are due (`tending.rs`).
//! Acquire and release do not pass through it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::prelude::*;

use super::config::PoolConfig;
use super::messages::{
    Close, Crashed, GetLeaks, GetPoolStats, Probe, Release, Resize, Revive, Warm,
};
use super::shared::PoolShared;
use super::stats::PoolStats;
use super::tending::{self, Tending};
use crate::backends::Backend;
use crate::error::{ConfigError, Error};
use crate::observe::LeakReport;
use crate::timetable::{Tend, Ticket, Timetable};

/// How often a pool actor may be restarted before its pool is marked failed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestartPolicy {
    pub(crate) max_restarts: u32,
    pub(crate) window: Duration,
}

/// Supervises one pool. Started by the [`Supervisor`](crate::Supervisor).
pub struct PoolActor<B: Backend> {
    pub(crate) shared: Arc<PoolShared<B>>,
    policy: RestartPolicy,
    timetable: Arc<Timetable>,
    /// Its entry in the timetable (which holds it weakly), from its first start.
    entry: Option<(Arc<Tending<B>>, Ticket)>,
}

impl<B: Backend> PoolActor<B> {
    pub(crate) fn new(
        shared: Arc<PoolShared<B>>,
        policy: RestartPolicy,
        timetable: Arc<Timetable>,
    ) -> Self {
        Self {
            shared,
            policy,
            timetable,
            entry: None,
        }
    }

    /// Crash reporting, warm-up and the timetable entry of one incarnation (actix drops
    /// the refills and probes it runs when the actor stops).
    fn run_lifecycle(&mut self, ctx: &mut Context<Self>) {
        // The pool's metric handles, registered with the recorder installed now.
        self.shared.observe.register(self.shared.health.state());
        // Report backend panics to ourselves, at most one outstanding report per incarnation.
        let me = ctx.address().downgrade();
        let reported = Arc::new(AtomicBool::new(false));
        self.shared
            .set_crash_hook(Some(Box::new(move |phase, message| {
                if !reported.swap(true, Ordering::AcqRel) {
                    if let Some(addr) = me.upgrade() {
                        addr.do_send(Crashed {
                            phase,
                            message: message.to_string(),
                        });
                    }
                }
            })));
        self.spawn_refill(ctx);
        match &self.entry {
            Some((tending, _)) => {
                tending.restart();
                self.shared.observe.bell().ring();
            }
            None => {
                let tending = Arc::new(Tending::new(Arc::clone(&self.shared)));
                let weak: Weak<dyn Tend> = Arc::downgrade(&tending) as Weak<dyn Tend>;
                let ticket = self.timetable.add(weak);
                self.shared
                    .observe
                    .bell()
                    .hang(Arc::clone(&self.timetable), ticket);
                self.entry = Some((tending, ticket));
            }
        }
    }

    /// The warm-up of an incarnation, dropped with it.
    fn spawn_refill(&self, ctx: &mut Context<Self>) {
        ctx.spawn(tending::refill(Arc::clone(&self.shared)).into_actor(self));
    }
}

impl<B: Backend> Actor for PoolActor<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.shared.is_closed() {
            // Closed or failed while an address was still held: stay inert until it is
            // dropped (or, failed, until a Revive).
            return;
        }
        self.run_lifecycle(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_crash_hook(None);
    }
}

/// Gone for good (not restarted): its timetable slot is freed.
impl<B: Backend> Drop for PoolActor<B> {
    fn drop(&mut self) {
        if let Some((_, ticket)) = self.entry.take() {
            self.timetable.remove(ticket);
        }
    }
}

impl<B: Backend> Supervised for PoolActor<B> {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        if self.shared.is_closed() {
            return;
        }
        let _span = tracing::debug_span!("poolwarden.restart", pool = %self.shared.key, pool_name = self.shared.observe.label()).entered();
        let generation = self.shared.new_generation();
        tracing::warn!(pool = %self.shared.key, generation, "pool actor restarted");
        if self
            .shared
            .record_restart(self.policy.max_restarts, self.policy.window)
        {
            tracing::error!(
                pool = %self.shared.key,
                max_restarts = self.policy.max_restarts,
                window = ?self.policy.window,
                "pool restarted too often; marked failed until revived"
            );
        }
    }
}

impl<B: Backend> Handler<Revive> for PoolActor<B> {
    type Result = bool;
    fn handle(&mut self, _: Revive, ctx: &mut Self::Context) -> bool {
        let revived = self.shared.revive();
        if revived {
            tracing::info!(pool = %self.shared.key, "pool revived");
            self.run_lifecycle(ctx);
        }
        revived
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
        // What it opened is idle: the pool's maintenance watches it from now on.
        Box::pin(async move {
            let opened = shared.warm(msg.target).await;
            shared.observe.bell().ring();
            opened
        })
    }
}

impl<B: Backend> Handler<Resize> for PoolActor<B> {
    type Result = Result<(), Error>;
    fn handle(&mut self, msg: Resize, _ctx: &mut Self::Context) -> Self::Result {
        if msg.max_size == 0 || msg.max_size > PoolConfig::MAX_SIZE {
            return Err(ConfigError::new(
                "resize.max_size",
                format!("must be from 1 to {}", PoolConfig::MAX_SIZE),
            )
            .into());
        }
        if msg.min_idle > msg.max_size {
            return Err(ConfigError::new("resize.min_idle", "must not exceed max_size").into());
        }
        self.shared.resize(msg.max_size, msg.min_idle);
        self.shared.observe.bell().ring();
        Ok(())
    }
}

impl<B: Backend> Handler<GetPoolStats> for PoolActor<B> {
    type Result = MessageResult<GetPoolStats>;
    fn handle(&mut self, _: GetPoolStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.shared.stats())
    }
}

impl<B: Backend> Handler<GetLeaks> for PoolActor<B> {
    type Result = MessageResult<GetLeaks>;
    fn handle(&mut self, _: GetLeaks, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.shared.leaks())
    }
}

impl<B: Backend> Handler<Probe> for PoolActor<B> {
    type Result = ResponseFuture<Result<(), String>>;
    fn handle(&mut self, msg: Probe, _ctx: &mut Self::Context) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        // A probe may open a connection: the pool's maintenance watches it from now on.
        Box::pin(async move {
            let verdict = shared.probe(msg.timeout, msg.timeout).await;
            shared.observe.bell().ring();
            verdict
        })
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

    /// The connections held past the leak threshold.
    pub fn leaks(&self) -> Vec<LeakReport> {
        self.shared.leaks()
    }
}
