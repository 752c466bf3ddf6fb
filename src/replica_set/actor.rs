//! The replica-set actor: owns one pool actor per member, reads each member's role, lag
//! and position on an interval, publishes role changes, adds and removes members.
//! Reads and writes do not pass through it (see [`ReplicaSetHandle`](crate::ReplicaSetHandle)).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::FutureExt;
use tokio::time::Instant;

use super::members::{MemberInfo, MemberState, SetShared};
use super::messages::{AddMember, RemoveMember, RoleChanged, Topology};
use crate::backends::{Backend, Role};
use crate::error::{Error, Phase};
use crate::key::PoolKey;
use crate::pool::actor::PoolActor;
use crate::pool::config::PoolConfig;
use crate::pool::factory::PoolFactory;
use crate::pool::messages::Close;

/// Where role changes go (the supervisor's subscribers).
pub(crate) type RoleSink = Arc<dyn Fn(RoleChanged) + Send + Sync>;

/// Supervises the pools of one replica set. Started by the [`Supervisor`](crate::Supervisor).
pub struct ReplicaSetActor<B: Backend> {
    shared: Arc<SetShared<B>>,
    backend: Arc<B>,
    factory: PoolFactory<B>,
    pool_config: PoolConfig,
    interval: Duration,
    pools: HashMap<PoolKey, Addr<PoolActor<B>>>,
    sink: RoleSink,
    round_running: Arc<AtomicBool>,
}

impl<B: Backend> ReplicaSetActor<B> {
    pub(crate) fn new(
        shared: Arc<SetShared<B>>,
        factory: PoolFactory<B>,
        pool_config: PoolConfig,
        interval: Duration,
        pools: HashMap<PoolKey, Addr<PoolActor<B>>>,
        sink: RoleSink,
    ) -> Self {
        Self {
            backend: Arc::clone(&factory.backend),
            shared,
            factory,
            pool_config,
            interval,
            pools,
            sink,
            round_running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Read every member's status once (one round at a time). A role change is
    /// published as soon as its member answers, not when the slowest member does.
    fn probe_round(&self, ctx: &mut Context<Self>) {
        if self.round_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let members = Arc::clone(&self.shared.members.read());
        let backend = Arc::clone(&self.backend);
        let name = self.shared.name.clone();
        let sink = Arc::clone(&self.sink);
        let running = Arc::clone(&self.round_running);
        let shared = Arc::clone(&self.shared);
        ctx.spawn(
            async move {
                let probes = members.iter().map(|m| {
                    let (backend, name, sink) = (&*backend, &name, &sink);
                    let shared = &shared;
                    async move {
                        if let Some((from, to)) = probe_member(backend, m).await {
                            publish(sink, name, m, from, to);
                        }
                        // Writes waiting for a primary look again.
                        shared.changed.notify_waiters();
                    }
                });
                futures::future::join_all(probes).await;
                running.store(false, Ordering::Release);
            }
            .into_actor(self),
        );
    }
}

/// One member's status; answers a role change.
///
/// The connection comes from the member's pool with a single connect attempt: a member
/// that refuses connections is marked unreachable at once. A pool too busy to lend a
/// connection within the probe budget says nothing about the server, so it leaves the
/// member as it was.
async fn probe_member<B: Backend>(backend: &B, m: &MemberState<B>) -> Option<(Role, Role)> {
    let budget = m.pool.config.probe_timeout;
    let mut conn = match m.pool.acquire_no_retry(budget).await {
        Ok(conn) => conn,
        Err(
            Error::Timeout {
                phase: Phase::Wait, ..
            }
            | Error::PoolSaturated { .. },
        ) => return None,
        Err(e) => {
            tracing::debug!(member = %m.pool.key, error = %e, "topology probe: member unreachable");
            m.unreachable();
            return None;
        }
    };
    // Backend code may panic: that is a failed probe, not a dead actor.
    let status = AssertUnwindSafe(backend.status(&mut conn)).catch_unwind();
    match tokio::time::timeout(budget, status).await {
        Ok(Err(_panic)) => {
            conn.discard();
            tracing::warn!(member = %m.pool.key, "topology probe: status panicked");
            m.unreachable();
            None
        }
        Ok(Ok(Ok(status))) => {
            let to = status.map(|s| s.role);
            m.observe(status).zip(to)
        }
        Ok(Ok(Err(e))) => {
            tracing::debug!(member = %m.pool.key, error = %e, "topology probe: status failed");
            m.unreachable();
            None
        }
        Err(_) => {
            // A status query cut short leaves the connection in an unknown state.
            conn.discard();
            tracing::debug!(member = %m.pool.key, ?budget, "topology probe: status timed out");
            m.unreachable();
            None
        }
    }
}

fn publish<B: Backend>(sink: &RoleSink, set: &str, m: &MemberState<B>, from: Role, to: Role) {
    let host = m.pool.connection.primary_host();
    tracing::warn!(set, member = %m.pool.key, %host, ?from, ?to, "replica set member changed role");
    let event = RoleChanged {
        set: set.to_string(),
        key: m.pool.key,
        host,
        from,
        to,
        at: Instant::now(),
    };
    sink(event);
}

impl<B: Backend> Actor for ReplicaSetActor<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.probe_round(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.probe_round(ctx));
    }
}

impl<B: Backend> Handler<Topology> for ReplicaSetActor<B> {
    type Result = MessageResult<Topology>;
    fn handle(&mut self, _: Topology, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.shared
                .members
                .read()
                .iter()
                .map(|m| m.info())
                .collect::<Vec<MemberInfo>>(),
        )
    }
}

impl<B: Backend> Handler<AddMember> for ReplicaSetActor<B> {
    type Result = Result<PoolKey, Error>;
    fn handle(&mut self, msg: AddMember, ctx: &mut Self::Context) -> Self::Result {
        msg.connection.validate()?;
        let key = PoolKey::of(&msg.connection);
        if self.pools.contains_key(&key) {
            return Ok(key);
        }
        let (addr, member) = MemberState::spawn(
            &self.factory,
            &self.shared.name,
            key,
            msg.connection,
            msg.role,
            self.pool_config.clone(),
            self.shared.slow_start_window,
        );
        // Not at full share at once: its reads ramp up over the slow-start window.
        member.warm_up();
        self.shared.members.push(member);
        self.pools.insert(key, addr);
        tracing::info!(set = %self.shared.name, member = %key, "member added");
        // Learn its role, lag and position now rather than at the next tick (skipped if a
        // round is under way; the next tick covers it).
        self.probe_round(ctx);
        Ok(key)
    }
}

impl<B: Backend> Handler<RemoveMember> for ReplicaSetActor<B> {
    type Result = bool;
    fn handle(&mut self, msg: RemoveMember, _: &mut Self::Context) -> bool {
        let Some(addr) = self.pools.remove(&msg.key) else {
            return false;
        };
        if let Some(m) = self.shared.members.remove(msg.key) {
            m.pool.close(false);
        }
        addr.do_send(Close);
        tracing::info!(set = %self.shared.name, member = %msg.key, "member removed");
        true
    }
}

impl<B: Backend> Handler<Close> for ReplicaSetActor<B> {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Self::Context) {
        for m in self.shared.members.read().iter() {
            m.pool.close(false);
        }
        for (_, addr) in self.pools.drain() {
            addr.do_send(Close);
        }
        ctx.stop();
    }
}
