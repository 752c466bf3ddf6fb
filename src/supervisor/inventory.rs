//! What the supervisor holds, asked without creating anything: [`Contains`] and
//! [`ListPools`].

use actix::prelude::*;

use super::actor::Supervisor;
use super::messages::PoolRef;
use crate::backends::Backend;
use crate::key::PoolKey;

/// Whether the supervisor knows a pool, without creating it: by name, whether the name is
/// registered; by key, whether a pool with that key runs; by config, whether the pool of
/// that config's key runs (no connect, no credential check).
///
/// ```
/// use poolwarden::backends::sim::SimBackend;
/// use poolwarden::messages::{Contains, PoolRef};
/// use poolwarden::{ConnectionConfig, Supervisor, SupervisorConfig};
/// use actix::Actor;
///
/// # actix::System::new().block_on(async {
/// let sup = Supervisor::new(SimBackend::default(), SupervisorConfig::default())?.start();
/// let config = ConnectionConfig::sim("orders");
/// assert!(!sup.send(Contains(config.clone().into())).await?);
/// assert!(!sup.send(Contains(config.clone().into())).await?, "asking created nothing");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct Contains(pub PoolRef);

/// Every pool the supervisor runs and every registered name, without creating any. Pools
/// of replica-set members belong to their set and are not listed.
///
/// ```
/// use poolwarden::backends::sim::SimBackend;
/// use poolwarden::messages::ListPools;
/// use poolwarden::{ConnectionConfig, Supervisor, SupervisorConfig};
/// use actix::Actor;
///
/// # actix::System::new().block_on(async {
/// let sup = Supervisor::new(SimBackend::default(), SupervisorConfig::default())?.start();
/// assert!(sup.send(ListPools).await?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<PoolListing>")]
pub struct ListPools;

/// One line of [`ListPools`]' answer (and of
/// [`SupervisorHandle::pools`](crate::SupervisorHandle::pools)).
///
/// ```
/// use poolwarden::backends::sim::SimBackend;
/// use poolwarden::{ConnectionConfig, PoolListing, SupervisorConfig, SupervisorHandle};
///
/// # actix::System::new().block_on(async {
/// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
/// let pool = sup.pool(ConnectionConfig::parse("sim://app:s3cret@db1/orders")?).await?;
/// let listing: Vec<PoolListing> = sup.pools().await?;
/// assert_eq!(listing[0].key, pool.key());
/// assert!(listing[0].running && listing[0].names.is_empty());
/// assert!(!listing[0].target.contains("s3cret"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolListing {
    /// The pool's key.
    pub key: PoolKey,
    /// Names registered for it, sorted.
    pub names: Vec<String>,
    /// Where it connects, as [`ConnectionConfig`](crate::ConnectionConfig)'s `Display`
    /// prints it: the password replaced by `***`, no query.
    pub target: String,
    /// Whether a pool runs for it now; a registered name's pool is created on its first
    /// lookup and again after being reaped or evicted.
    pub running: bool,
}

impl<B: Backend> Handler<Contains> for Supervisor<B> {
    type Result = bool;
    fn handle(&mut self, msg: Contains, _: &mut Self::Context) -> bool {
        let registry = self.registry();
        match msg.0 {
            PoolRef::Name(name) => registry.name(&name).is_some(),
            PoolRef::Key(key) => registry.entry(&key).is_some(),
            PoolRef::Config(config) => registry.entry(&PoolKey::of(&config)).is_some(),
        }
    }
}

impl<B: Backend> Handler<ListPools> for Supervisor<B> {
    type Result = MessageResult<ListPools>;
    fn handle(&mut self, _: ListPools, _: &mut Self::Context) -> Self::Result {
        let registry = self.registry();
        let mut out: Vec<PoolListing> = registry
            .entries()
            .map(|e| PoolListing {
                key: e.shared.key,
                names: Vec::new(),
                target: e.shared.connection.to_string(),
                running: true,
            })
            .collect();
        for (name, reg) in registry.names() {
            let key = PoolKey::of(&reg.connection);
            match out.iter_mut().find(|l| l.key == key) {
                Some(listing) => listing.names.push(name.clone()),
                None => out.push(PoolListing {
                    key,
                    names: vec![name.clone()],
                    target: reg.connection.to_string(),
                    running: false,
                }),
            }
        }
        for listing in &mut out {
            listing.names.sort();
        }
        out.sort_by(|a, b| a.names.cmp(&b.names).then(a.target.cmp(&b.target)));
        MessageResult(out)
    }
}
