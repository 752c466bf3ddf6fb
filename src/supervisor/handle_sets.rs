//! [`SupervisorHandle`]'s methods for replica sets and for the events the supervisor
//! publishes (breaker transitions, role changes).

use actix::prelude::*;

use super::events::{BreakerTransition, Subscribe};
use super::handle::SupervisorHandle;
use super::messages::{ListReplicaSets, LookupReplicaSet, RegisterReplicaSet, SubscribeTopology};
use crate::backends::Backend;
use crate::error::Error;
use crate::replica_set::config::ReplicaSetConfig;
use crate::replica_set::handle::ReplicaSetHandle;
use crate::replica_set::messages::RoleChanged;

impl<B: Backend> SupervisorHandle<B> {
    /// Start a replica set (or get the running one of that name).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use poolwarden::ReplicaSetConfig;
    /// let set = sup
    ///     .replica_set(ReplicaSetConfig::new(
    ///         "orders",
    ///         ConnectionConfig::sim("primary"),
    ///         vec![ConnectionConfig::sim("replica1")],
    ///     ))
    ///     .await?;
    /// let _ = set;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the set is started).
    pub async fn replica_set(
        &self,
        config: ReplicaSetConfig,
    ) -> Result<ReplicaSetHandle<B>, Error> {
        self.addr().send(RegisterReplicaSet::new(config)).await?
    }

    /// The running replica set called `name`.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use poolwarden::ReplicaSetConfig;
    /// let config = ReplicaSetConfig::new("orders", ConnectionConfig::sim("primary"), vec![]);
    /// sup.replica_set(config).await?;
    /// assert!(sup.lookup_replica_set("orders").await.is_ok());
    /// assert!(sup.lookup_replica_set("other").await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out.
    pub async fn lookup_replica_set(
        &self,
        name: impl Into<String>,
    ) -> Result<ReplicaSetHandle<B>, Error> {
        self.addr().send(LookupReplicaSet::new(name)).await?
    }

    /// Deliver every replica-set role change to `subscriber`.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use actix::prelude::*;
    /// use poolwarden::messages::RoleChanged;
    ///
    /// struct Log;
    /// impl Actor for Log {
    ///     type Context = Context<Self>;
    /// }
    /// impl Handler<RoleChanged> for Log {
    ///     type Result = ();
    ///     fn handle(&mut self, change: RoleChanged, _: &mut Context<Self>) {
    ///         println!("{change:?}");
    ///     }
    /// }
    /// sup.subscribe_topology(Log.start().recipient()).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the subscriber is added).
    pub async fn subscribe_topology(
        &self,
        subscriber: Recipient<RoleChanged>,
    ) -> Result<(), Error> {
        Ok(self.addr().send(SubscribeTopology(subscriber)).await?)
    }

    /// Deliver every pool's circuit-breaker transitions to `subscriber`.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// use actix::prelude::*;
    /// use poolwarden::messages::BreakerTransition;
    ///
    /// struct Alert;
    /// impl Actor for Alert {
    ///     type Context = Context<Self>;
    /// }
    /// impl Handler<BreakerTransition> for Alert {
    ///     type Result = ();
    ///     fn handle(&mut self, t: BreakerTransition, _: &mut Context<Self>) {
    ///         println!("pool {}: {:?} -> {:?}", t.key, t.from, t.to);
    ///     }
    /// }
    /// sup.subscribe(Alert.start().recipient()).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the supervisor still carries the request out (the subscriber is added).
    pub async fn subscribe(&self, subscriber: Recipient<BreakerTransition>) -> Result<(), Error> {
        Ok(self.addr().send(Subscribe(subscriber)).await?)
    }

    /// Every running replica set, sorted by name (what a dashboard lists).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, ReplicaSetConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// sup.replica_set(ReplicaSetConfig::new("orders", ConnectionConfig::sim("primary"), vec![]))
    ///     .await?;
    /// let sets = sup.replica_sets().await?;
    /// assert_eq!(sets.len(), 1);
    /// assert_eq!(sets[0].name(), "orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only loses the answer.
    pub async fn replica_sets(&self) -> Result<Vec<ReplicaSetHandle<B>>, Error> {
        Ok(self.addr().send(ListReplicaSets::default()).await?)
    }
}
