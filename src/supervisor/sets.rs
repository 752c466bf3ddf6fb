//! The supervisor's replica sets: starting one, looking one up, listing them, and
//! subscribing to their role changes.

use actix::prelude::*;

use super::actor::{SetEntry, Supervisor};
use super::messages::{ListReplicaSets, LookupReplicaSet, RegisterReplicaSet, SubscribeTopology};
use crate::backends::Backend;
use crate::error::Error;
use crate::replica_set::handle::ReplicaSetHandle;

impl<B: Backend> Handler<SubscribeTopology> for Supervisor<B> {
    type Result = ();
    fn handle(&mut self, msg: SubscribeTopology, _: &mut Self::Context) {
        self.role_subscribers_mut().add(msg.0);
    }
}

impl<B: Backend> Handler<RegisterReplicaSet<B>> for Supervisor<B> {
    type Result = Result<ReplicaSetHandle<B>, Error>;
    fn handle(&mut self, msg: RegisterReplicaSet<B>, _: &mut Self::Context) -> Self::Result {
        if !self.accepting() {
            return Err(Error::ShuttingDown);
        }
        let config = msg.config;
        config.validate()?;
        if let Some(set) = self.sets_mut().get(&config.name) {
            return Ok(set.handle.clone());
        }
        let pool_config = config
            .pool
            .clone()
            .unwrap_or_else(|| self.config().default_pool.clone());
        let (addr, handle) =
            ReplicaSetHandle::start(&config, self.factory(), pool_config, self.role_sink());
        tracing::info!(set = %config.name, members = handle.topology().len(), "replica set started");
        self.sets_mut().insert(
            config.name.clone(),
            SetEntry {
                addr,
                handle: handle.clone(),
            },
        );
        Ok(handle)
    }
}

impl<B: Backend> Handler<LookupReplicaSet<B>> for Supervisor<B> {
    type Result = Result<ReplicaSetHandle<B>, Error>;
    fn handle(&mut self, msg: LookupReplicaSet<B>, _: &mut Self::Context) -> Self::Result {
        self.sets_mut()
            .get(&msg.name)
            .map(|s| s.handle.clone())
            .ok_or(Error::UnknownPool { name: msg.name })
    }
}

impl<B: Backend> Handler<ListReplicaSets<B>> for Supervisor<B> {
    type Result = MessageResult<ListReplicaSets<B>>;
    fn handle(&mut self, _: ListReplicaSets<B>, _: &mut Self::Context) -> Self::Result {
        let mut sets: Vec<_> = self.sets_mut().values().map(|s| s.handle.clone()).collect();
        sets.sort_by(|a, b| a.name().cmp(b.name()));
        MessageResult(sets)
    }
}
