//! The supervisor's registry of pools: one entry per pool key (its actor's only strong
//! address and its shared state), the names registered for configs, creation with
//! least-recently-used eviction at `max_pools`, and reaping of pools unused for long.
//! The eviction and reaping choices are pure functions at the end of the file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::time::Instant;

use crate::backends::Backend;
use crate::connection::ConnectionConfig;
use crate::error::Error;
use crate::key::PoolKey;
use crate::pool::actor::PoolActor;
use crate::pool::config::PoolConfig;
use crate::pool::credential::{CredentialsProvider, Version};
use crate::pool::factory::PoolFactory;
use crate::pool::handle::PoolHandle;
use crate::pool::messages::Close;
use crate::pool::shared::PoolShared;

/// One running pool.
pub(super) struct Entry<B: Backend> {
    pub(super) addr: Addr<PoolActor<B>>,
    pub(super) shared: Arc<PoolShared<B>>,
}

impl<B: Backend> Clone for Entry<B> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B: Backend> Entry<B> {
    /// A handle resolved by key or name (no credential presented).
    pub(super) fn handle(&self) -> PoolHandle<B> {
        PoolHandle {
            shared: Arc::clone(&self.shared),
            actor: self.addr.downgrade(),
            credential: None,
        }
    }

    /// A handle resolved with a config, served as long as `credential` may be (see
    /// [`PoolHandle`]).
    pub(super) fn handle_for(&self, credential: Arc<Version>) -> PoolHandle<B> {
        PoolHandle {
            credential: Some(credential),
            ..self.handle()
        }
    }

    fn candidate(&self, key: PoolKey) -> Candidate<PoolKey> {
        Candidate {
            key,
            last_used: self.shared.last_used(),
            busy: self.shared.in_use() > 0,
        }
    }
}

/// What a name stands for.
#[derive(Clone)]
pub(super) struct Registration {
    pub(super) connection: ConnectionConfig,
    pub(super) pool: Option<PoolConfig>,
    /// Asked for the password at each connect instead of `connection`'s.
    pub(super) credentials: Option<Arc<dyn CredentialsProvider>>,
}

/// Pools created, evicted and destroyed since the supervisor started.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub(super) created: u64,
    pub(super) evicted: u64,
    pub(super) destroyed: u64,
}

pub(super) struct Registry<B: Backend> {
    pools: HashMap<PoolKey, Entry<B>>,
    names: HashMap<String, Registration>,
    tally: Tally,
}

impl<B: Backend> Default for Registry<B> {
    fn default() -> Self {
        Self {
            pools: HashMap::new(),
            names: HashMap::new(),
            tally: Tally::default(),
        }
    }
}

impl<B: Backend> Registry<B> {
    /// The pool of `key`, if it runs.
    pub(super) fn get(&self, key: &PoolKey) -> Option<PoolHandle<B>> {
        self.pools.get(key).map(Entry::handle)
    }

    /// The running pool of `key`, if any.
    pub(super) fn entry(&self, key: &PoolKey) -> Option<&Entry<B>> {
        self.pools.get(key)
    }

    /// Create the pool of `key` (computed once by the caller from `connection`, which
    /// has no pool yet) with `pool`, asking `credentials` for the password when given;
    /// at `max_pools`, the least recently used idle pool is evicted first. The handle
    /// carries the new pool's credential.
    pub(super) fn create(
        &mut self,
        key: PoolKey,
        connection: ConnectionConfig,
        pool: PoolConfig,
        credentials: Option<Arc<dyn CredentialsProvider>>,
        max_pools: usize,
        factory: &PoolFactory<B>,
    ) -> Result<PoolHandle<B>, Error> {
        debug_assert!(!self.pools.contains_key(&key));
        pool.validate()?;
        if self.pools.len() >= max_pools {
            let victim = least_recently_used(self.pools.iter().map(|(k, e)| e.candidate(*k)))
                .ok_or(Error::TooManyPools { max_pools })?;
            tracing::info!(pool = %victim, "evicting least recently used pool");
            self.stop(victim);
            self.tally.evicted += 1;
        }
        // Kept for the pool's life: no room left over from parsing.
        let mut connection = connection;
        connection.hosts.shrink_to_fit();
        let (addr, shared) = factory.spawn_with_credentials(key, connection, pool, credentials);
        let entry = Entry { addr, shared };
        let handle = entry.handle_for(entry.shared.credential_current());
        self.pools.insert(key, entry);
        self.tally.created += 1;
        Ok(handle)
    }

    pub(super) fn name(&self, name: &str) -> Option<Registration> {
        self.names.get(name).cloned()
    }

    /// Every registered name and what it stands for.
    pub(super) fn names(&self) -> impl Iterator<Item = (&String, &Registration)> {
        self.names.iter()
    }

    pub(super) fn register(&mut self, name: String, registration: Registration) {
        self.names.insert(name, registration);
    }

    /// The pool of `key` changed its credential: the names registered for that key take
    /// it up, so a named pool recreated after an eviction connects with the credential
    /// that last authenticated, not the one first registered.
    pub(super) fn credential_changed(&mut self, key: PoolKey) {
        let Some(entry) = self.pools.get(&key) else {
            return;
        };
        let current = entry.shared.credential_current();
        for reg in self.names.values_mut() {
            if PoolKey::of(&reg.connection) == key {
                reg.connection = current.config().clone();
                reg.credentials = current.provider().cloned();
            }
        }
    }

    /// Close a pool and stop its actor (dropping the only strong address, so the actix
    /// supervisor does not restart it). Answers how many idle connections it closed.
    pub(super) fn stop(&mut self, key: PoolKey) -> usize {
        let Some(entry) = self.pools.remove(&key) else {
            return 0;
        };
        let _span = tracing::debug_span!("poolwarden.stop_pool", pool = %key, pool_name = entry.shared.observe.label()).entered();
        let closed = entry.shared.close(false);
        entry.addr.do_send(Close);
        self.tally.destroyed += 1;
        closed
    }

    /// Stop every pool unused for `older_than` with nothing checked out.
    pub(super) fn reap(&mut self, older_than: Duration) -> Vec<PoolKey> {
        let now = Instant::now();
        let doomed = unused_for(
            self.pools.iter().map(|(k, e)| e.candidate(*k)),
            now,
            older_than,
        );
        for key in &doomed {
            tracing::info!(pool = %key, "reaping idle pool");
            self.stop(*key);
        }
        doomed
    }

    pub(super) fn entries(&self) -> impl Iterator<Item = &Entry<B>> {
        self.pools.values()
    }

    /// Take every pool out (shutdown), counting them destroyed.
    pub(super) fn drain(&mut self) -> Vec<Entry<B>> {
        let entries: Vec<_> = self.pools.drain().map(|(_, e)| e).collect();
        self.tally.destroyed += entries.len() as u64;
        entries
    }

    /// Pools destroyed outside the registry (replica-set members at shutdown).
    pub(super) fn count_destroyed(&mut self, n: usize) {
        self.tally.destroyed += n as u64;
    }

    pub(super) fn tally(&self) -> Tally {
        self.tally
    }
}

/// A pool as eviction sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<K> {
    /// The pool.
    pub(crate) key: K,
    /// When an acquire last started on it.
    pub(crate) last_used: Instant,
    /// Connections are checked out: never evicted.
    pub(crate) busy: bool,
}

/// The least recently used pool that is not busy, if any.
pub(crate) fn least_recently_used<K: Copy>(
    pools: impl IntoIterator<Item = Candidate<K>>,
) -> Option<K> {
    pools
        .into_iter()
        .filter(|c| !c.busy)
        .min_by_key(|c| c.last_used)
        .map(|c| c.key)
}

/// Every pool not busy and unused since `now - older_than`.
pub(crate) fn unused_for<K: Copy>(
    pools: impl IntoIterator<Item = Candidate<K>>,
    now: Instant,
    older_than: Duration,
) -> Vec<K> {
    pools
        .into_iter()
        .filter(|c| !c.busy && now.saturating_duration_since(c.last_used) >= older_than)
        .map(|c| c.key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: u8, ago_ms: u64, busy: bool, now: Instant) -> Candidate<u8> {
        Candidate {
            key,
            last_used: now - Duration::from_millis(ago_ms),
            busy,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn evicts_oldest_idle_and_never_a_busy_one() {
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        let pools = [
            c(1, 500, false, now),
            c(2, 900, true, now),
            c(3, 700, false, now),
        ];
        assert_eq!(least_recently_used(pools), Some(3));
        assert_eq!(least_recently_used([c(2, 900, true, now)]), None);
        assert_eq!(least_recently_used::<u8>([]), None);
    }

    #[tokio::test(start_paused = true)]
    async fn reaps_only_unused_and_idle() {
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        let pools = [
            c(1, 5000, false, now),
            c(2, 5000, true, now),
            c(3, 10, false, now),
        ];
        assert_eq!(unused_for(pools, now, Duration::from_secs(1)), vec![1]);
    }
}
