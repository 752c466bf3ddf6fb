//! The supervisor's ledger: the limits (one per endpoint met, and the total), a
//! [`PoolBudget`] for each pool, and the figures ([`BudgetStats`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use super::limit::{Holder, Limit};
use super::PoolBudget;
use crate::connection::ConnectionConfig;
use crate::key::PoolKey;

/// The endpoint a config's connections count against: its first host as `host:port`
/// (a Unix socket directory and port too), the one a connect tries first. `None` for a
/// config without hosts (SQLite): it counts against the total only.
pub(crate) fn endpoint_of(connection: &ConnectionConfig) -> Option<String> {
    connection.hosts.first().map(ToString::to_string)
}

/// The connection budget of a supervisor: one limit per endpoint (with
/// `max_connections_per_host`), one for the total (with `max_total_connections`).
pub(crate) struct Ledger {
    per_host: Option<u32>,
    total: Option<Arc<Limit>>,
    endpoints: Mutex<BTreeMap<String, Arc<Limit>>>,
}

impl Ledger {
    /// `None` when neither limit is set: pools then carry no budget at all.
    pub(crate) fn new(per_host: Option<u32>, total: Option<u32>) -> Option<Arc<Self>> {
        if per_host.is_none() && total.is_none() {
            return None;
        }
        Some(Arc::new(Self {
            per_host,
            total: total.map(|t| Arc::new(Limit::new(t))),
            endpoints: Mutex::default(),
        }))
    }

    /// The budget of the pool `key`, whose connections go to `endpoint`; `None` when no
    /// limit applies to it (a SQLite pool with only `max_connections_per_host`).
    pub(crate) fn pool_budget(&self, key: PoolKey, endpoint: Option<String>) -> Option<PoolBudget> {
        let endpoint = match (self.per_host, endpoint) {
            (Some(limit), Some(name)) => {
                let l = Arc::clone(
                    self.endpoints
                        .lock()
                        .entry(name.clone())
                        .or_insert_with(|| Arc::new(Limit::new(limit))),
                );
                Some((name, l))
            }
            _ => None,
        };
        if endpoint.is_none() && self.total.is_none() {
            return None;
        }
        let holder = Arc::new(Holder::new(key));
        if let Some((_, l)) = &endpoint {
            l.join(Arc::clone(&holder));
        }
        if let Some(l) = &self.total {
            l.join(Arc::clone(&holder));
        }
        Some(PoolBudget {
            holder,
            endpoint,
            total: self.total.clone(),
        })
    }

    pub(crate) fn stats(&self) -> BudgetStats {
        let endpoints = self
            .endpoints
            .lock()
            .iter()
            .map(|(name, l)| EndpointBudget {
                endpoint: name.clone(),
                limit: l.limit,
                used: l.used(),
                holders: l.holders(),
            })
            .collect();
        BudgetStats {
            endpoints,
            total: self.total.as_ref().map(|l| TotalBudget {
                limit: l.limit,
                used: l.used(),
            }),
        }
    }
}

/// The connection budget's figures ([`SupervisorStats::budget`](crate::SupervisorStats::budget)):
/// empty when the supervisor has no `max_connections_per_host` nor `max_total_connections`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BudgetStats {
    /// One entry per endpoint pools have used, sorted by endpoint (with
    /// `max_connections_per_host`).
    pub endpoints: Vec<EndpointBudget>,
    /// The whole supervisor (with `max_total_connections`).
    pub total: Option<TotalBudget>,
}

/// One endpoint's budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointBudget {
    /// `host:port` (for a Unix socket, `directory:port`).
    pub endpoint: String,
    /// `max_connections_per_host`.
    pub limit: u32,
    /// Connections open or opening against it, every pool's together.
    pub used: usize,
    /// Who holds them: connections per pool key, sorted by key (pools holding none left
    /// out). Sums to `used` but for permits taken on the way to a connection.
    pub holders: Vec<(PoolKey, usize)>,
}

/// The whole supervisor's budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TotalBudget {
    /// `max_total_connections`.
    pub limit: u32,
    /// Connections open or opening, every pool's together.
    pub used: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Host;

    #[test]
    fn an_endpoint_is_the_first_host_and_sqlite_has_none() {
        let mut c = ConnectionConfig::new("postgres", "db1", 5432);
        c.hosts.push(Host {
            host: "db2".into(),
            port: 5433,
        });
        assert_eq!(endpoint_of(&c).as_deref(), Some("db1:5432"));
        let socket = ConnectionConfig::new("postgres", "/run/postgresql", 5432);
        assert_eq!(
            endpoint_of(&socket).as_deref(),
            Some("/run/postgresql:5432")
        );
        let sqlite = ConnectionConfig::parse("sqlite://./app.db").unwrap();
        assert_eq!(endpoint_of(&sqlite), None);
    }

    #[test]
    fn a_sqlite_pool_counts_only_against_the_total() {
        let per_host = Ledger::new(Some(2), None).unwrap();
        assert!(per_host
            .pool_budget(PoolKey::of(&ConnectionConfig::sim("k")), None)
            .is_none());
        let both = Ledger::new(Some(2), Some(3)).unwrap();
        let b = both
            .pool_budget(PoolKey::of(&ConnectionConfig::sim("k")), None)
            .unwrap();
        assert!(b.endpoint.is_none() && b.total.is_some());
        let permits: Vec<_> = (0..3).map(|_| b.try_take().unwrap()).collect();
        assert!(b.try_take().is_none());
        assert_eq!(both.stats().total.unwrap().used, 3);
        drop(permits);
        assert_eq!(both.stats().total.unwrap().used, 0);
        assert!(Ledger::new(None, None).is_none());
    }
}
