//! The replica set's handle: writes go to the primary, reads to a member chosen by the
//! set's strategy, all in the caller's task (the pure router in `router.rs` picks, the
//! member's pool serves); the replica-set actor only keeps roles, lag and membership up to
//! date.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, WeakAddr};
use futures::FutureExt;
use serde::Serialize;
use std::task::Poll;
use tokio::time::Instant;

use super::actor::{ReplicaSetActor, RoleSink};
use super::config::ReplicaSetConfig;
use super::members::{MemberInfo, MemberState, SetShared};
use super::messages::{AddMember, RemoveMember};
use super::router::{ReadRequest, Strategy};
use crate::backends::{Backend, Role};
use crate::connection::ConnectionConfig;
use crate::error::{Error, Phase};
use crate::key::PoolKey;
use crate::pool::acquire::Now;
use crate::pool::config::PoolConfig;
use crate::pool::factory::PoolFactory;
use crate::pool::guard::PooledConnection;
use crate::pool::shared::panic_message;
use crate::pool::stats::PoolStats;

/// A write position: reads acquired with it see the write that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CausalityToken(pub u64);

/// Read options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Overrides the set's strategy.
    pub strategy: Option<Strategy>,
    /// Read-your-writes: only members that replayed past this token (else the primary).
    pub after: Option<CausalityToken>,
}

/// A cloneable handle to a replica set: writes go to the primary, reads to a replica
/// chosen by the set's strategy, all in the caller's task.
pub struct ReplicaSetHandle<B: Backend> {
    pub(crate) shared: Arc<SetShared<B>>,
    pub(crate) backend: Arc<B>,
    pub(crate) actor: WeakAddr<ReplicaSetActor<B>>,
}

impl<B: Backend> Clone for ReplicaSetHandle<B> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            backend: Arc::clone(&self.backend),
            actor: self.actor.clone(),
        }
    }
}

/// How long a write whose primary refused waits, at most, before asking again (a
/// topology change wakes it sooner).
const WRITE_RETRY: Duration = Duration::from_millis(50);

/// Errors worth a second try on another member.
fn worth_retrying(e: &Error) -> bool {
    matches!(
        e,
        Error::Backend {
            phase: Phase::Connect,
            ..
        } | Error::Timeout {
            phase: Phase::Connect,
            ..
        } | Error::CircuitOpen { .. }
            | Error::PoolFailed { .. }
            | Error::PoolClosed { .. }
    )
}

impl<B: Backend> ReplicaSetHandle<B> {
    /// Start the set: a pool per member (the primary first; a member listed twice, which
    /// validation refuses, once) and the replica-set actor that owns them. Answers the
    /// actor's only strong address.
    pub(crate) fn start(
        config: &ReplicaSetConfig,
        factory: PoolFactory<B>,
        pool_config: PoolConfig,
        sink: RoleSink,
    ) -> (Addr<ReplicaSetActor<B>>, Self) {
        let mut pools = HashMap::new();
        let mut members = Vec::new();
        let all = std::iter::once((config.primary.clone(), Role::Primary))
            .chain(config.replicas.iter().cloned().map(|c| (c, Role::Replica)));
        for (connection, role) in all {
            let key = PoolKey::of(&connection);
            if pools.contains_key(&key) {
                continue;
            }
            let (addr, member) = MemberState::spawn(
                &factory,
                &config.name,
                key,
                connection,
                role,
                pool_config.clone(),
                config.slow_start_window,
            );
            members.push(member);
            pools.insert(key, addr);
        }
        let shared = Arc::new(SetShared::new(config, members));
        let backend = Arc::clone(&factory.backend);
        let actor = ReplicaSetActor::new(
            Arc::clone(&shared),
            factory,
            pool_config,
            config.topology_interval,
            pools,
            sink,
        );
        let addr = actor.start();
        let handle = Self {
            shared,
            backend,
            actor: addr.downgrade(),
        };
        (addr, handle)
    }

    /// The set's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A connection to the primary, within the primary pool's acquire timeout.
    ///
    /// A connect to the primary that fails (refused, breaker open) is not retried against
    /// the same server with backoff: the write waits for the next topology probe (50 ms at
    /// most) and asks again which member is the primary, so a write issued
    /// during a failover lands on the promoted member as soon as the set has seen it,
    /// instead of failing. Past the deadline it fails with a [`Timeout`](Error::Timeout)
    /// carrying the last connect error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future at any await point frees its slot and closes a
    /// connection being opened or tested, so nothing leaks; the acquire only loses its place
    /// in the queue. A write waiting for a new primary simply stops waiting.
    pub async fn write(&self) -> Result<PooledConnection<B>, Error> {
        self.shared.learn_home();
        let start = Instant::now();
        let mut budget = None;
        loop {
            // Registered before the snapshot, so a change in between is not missed.
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let members = self.shared.members.read();
            let Some(i) = self.shared.route_write(&members) else {
                return Err(self.no_member());
            };
            let member = &members[i];
            let total = *budget.get_or_insert(member.pool.config.acquire_timeout);
            let left = total.saturating_sub(start.elapsed());
            let e = match member.pool.acquire_no_retry(left).await {
                Ok(conn) => {
                    member.write_served();
                    return Ok(conn);
                }
                Err(e) if worth_retrying(&e) => e,
                Err(e) => return Err(e),
            };
            let left = total.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(match e {
                    Error::Timeout { .. } => e,
                    other => Error::Timeout {
                        key: member.pool.key,
                        phase: Phase::Connect,
                        elapsed: start.elapsed(),
                        last_error: other.backend_error().cloned(),
                    },
                });
            }
            tracing::debug!(set = %self.shared.name, member = %member.pool.key, error = %e, "write failed; waiting for the primary");
            // Not held while waiting: the next try takes the members as they are then.
            drop(members);
            let _ = tokio::time::timeout(left.min(WRITE_RETRY), changed).await;
        }
    }

    /// Return a write connection and answer its causality token (the server's write
    /// position), when the backend has one.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the connection is owned by the future; dropped while asking for the write
    /// position, it goes back to its pool (a connection cut short mid-command is closed rather
    /// than reused, by the backend's broken check), and the token is lost.
    pub async fn release_write(
        &self,
        mut conn: PooledConnection<B>,
    ) -> Result<Option<CausalityToken>, Error> {
        let asked = AssertUnwindSafe(self.backend.write_position(&mut conn)).catch_unwind();
        let position = match asked.await {
            Ok(Ok(position)) => position,
            Ok(Err(source)) => {
                return Err(Error::Backend {
                    key: conn.key(),
                    phase: Phase::Probe,
                    source,
                })
            }
            Err(panic) => {
                let message = panic_message(&*panic);
                let key = conn.key();
                conn.discard();
                return Err(Error::BackendPanic {
                    key,
                    phase: Phase::Probe,
                    message,
                });
            }
        };
        drop(conn);
        Ok(position.map(CausalityToken))
    }

    /// A connection for reading, routed by the set's strategy.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future at any await point frees its slot and closes a
    /// connection being opened or tested, so nothing leaks; the acquire only loses its place
    /// in the queue.
    pub fn read(&self) -> impl Future<Output = Result<PooledConnection<B>, Error>> + '_ {
        // `read_with`'s future itself, not one wrapped around it.
        self.read_with(ReadOptions::default())
    }

    /// A connection for reading with per-request options. A read whose connect fails is
    /// retried once on another member within the same acquire budget: while another
    /// member could serve it, the first member gets one connect attempt (no backoff
    /// retries), so the retry has time left.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future at any await point frees its slot and closes a
    /// connection being opened or tested, so nothing leaks; the acquire only loses its place
    /// in the queue.
    pub async fn read_with(&self, options: ReadOptions) -> Result<PooledConnection<B>, Error> {
        self.shared.learn_home();
        let mut request = ReadRequest {
            strategy: options.strategy.unwrap_or(self.shared.strategy),
            max_lag: self.shared.max_lag,
            at_least: options.after.map(|t| t.0),
            exclude: None,
            fallback_to_primary: self.shared.fallback_to_primary,
        };
        // One snapshot for the read and its retry: picks (and the retry's `exclude`) are
        // indexes into it.
        let members = self.shared.members.read();
        // The first try's budget, and when its wait began: the clock is read only if that
        // try has to wait (so not on the fast path); its first poll, which waits for
        // nothing, is not counted against the retry's budget.
        let mut total = None;
        let mut waited_from: Option<Instant> = None;
        loop {
            let Some(pick) = self.shared.route_read(&members, &request) else {
                return Err(self.no_member());
            };
            let member = &members[pick.index];
            // One retry on another member, at most.
            let alternative = pick.alternative && request.exclude.is_none();
            let total = *total.get_or_insert(member.pool.config.acquire_timeout);
            let left = match waited_from {
                None => total,
                Some(t) => total.saturating_sub(t.elapsed()),
            };
            // The acquire's first step awaits nothing: the usual case is served without an
            // acquire future.
            let start = Instant::now();
            let attempt = match member.pool.acquire_now(start) {
                Now::Done(done) => done,
                Now::Then(rest) if alternative => {
                    let attempt = member.pool.acquire_then(start, left, false, rest);
                    tokio::pin!(attempt);
                    match futures::poll!(attempt.as_mut()) {
                        Poll::Ready(done) => done,
                        Poll::Pending => {
                            waited_from = Some(Instant::now());
                            attempt.await
                        }
                    }
                }
                Now::Then(rest) => member.pool.acquire_then(start, left, true, rest).await,
            };
            match &attempt {
                Ok(_) => member.read_served(),
                Err(e) if alternative && worth_retrying(e) => {
                    tracing::debug!(set = %self.shared.name, member = %member.pool.key, error = %e, "read failed; retrying on another member");
                    request.exclude = Some(pick.index);
                    continue;
                }
                Err(_) => {}
            }
            return attempt;
        }
    }

    #[cold]
    fn no_member(&self) -> Error {
        Error::NoMember {
            set: self.shared.name.clone(),
        }
    }

    /// Every member's role, health and load, from the routing state (no message).
    pub fn topology(&self) -> Vec<MemberInfo> {
        self.shared
            .members
            .read()
            .iter()
            .map(|m| m.info())
            .collect()
    }

    /// The member pool for `key`, to inspect or resize it.
    pub fn member(&self, key: PoolKey) -> Option<PoolStats> {
        self.shared
            .members
            .read()
            .iter()
            .find(|m| m.pool.key == key)
            .map(|m| m.pool.stats())
    }

    /// Add a member at run time; answers its pool key.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the replica-set actor still carries the request out (the member is added).
    pub async fn add_member(
        &self,
        connection: ConnectionConfig,
        role: Role,
    ) -> Result<PoolKey, Error> {
        self.set_actor()?
            .send(AddMember { connection, role })
            .await?
    }

    /// Remove a member at run time; answers whether it was one.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the replica-set actor still carries the request out (the member is removed).
    pub async fn remove_member(&self, key: PoolKey) -> Result<bool, Error> {
        Ok(self.set_actor()?.send(RemoveMember { key }).await?)
    }

    /// The replica-set actor's address while it runs, to send it
    /// [`Topology`](crate::messages::Topology), [`AddMember`] or [`RemoveMember`].
    pub fn actor(&self) -> Option<Addr<ReplicaSetActor<B>>> {
        self.actor.upgrade()
    }

    fn set_actor(&self) -> Result<Addr<ReplicaSetActor<B>>, Error> {
        self.actor.upgrade().ok_or_else(|| Error::UnknownPool {
            name: self.shared.name.clone(),
        })
    }

    /// The connection configs of the members, primary first as configured.
    pub fn members(&self) -> Vec<ConnectionConfig> {
        self.shared
            .members
            .read()
            .iter()
            .map(|m| m.pool.connection.clone())
            .collect()
    }
}

impl<B: Backend> fmt::Debug for ReplicaSetHandle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaSetHandle")
            .field("name", &self.shared.name)
            .field("members", &self.shared.members.read().len())
            .finish()
    }
}
