//! How a simulated server performs ([`SimBehavior`]) and its replication role ([`SimRole`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use crate::connection::ConnectionConfig;
#[cfg(doc)]
use crate::error::BackendErrorKind;

/// How a simulated server performs. Every field defaults to zero: instant and reliable.
///
/// Deserializes from e.g. `{ connect_latency = "5ms", query_failure_rate = 0.1 }`; missing
/// fields take their default. The same knobs can be overridden for one connection with the
/// config [`options`](ConnectionConfig::options) `connect_latency`, `query_latency`,
/// `connect_failure_rate` and `query_failure_rate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimBehavior {
    /// How long a connect takes before it succeeds or fails. Default: 0.
    #[serde(with = "humantime_serde")]
    pub connect_latency: Duration,
    /// How long a query takes; also used by probes and resets. Default: 0.
    #[serde(with = "humantime_serde")]
    pub query_latency: Duration,
    /// Probability (0.0 to 1.0) that a connect fails with a
    /// [`Connect`](BackendErrorKind::Connect) error, drawn from the server's seeded
    /// generator. Default: 0.
    pub connect_failure_rate: f64,
    /// Probability (0.0 to 1.0) that a query, probe or reset fails with a
    /// [`Query`](BackendErrorKind::Query) error. Default: 0.
    pub query_failure_rate: f64,
}

/// Replication role of a simulated server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SimRole {
    /// Accepts writes (the default).
    #[default]
    #[serde(alias = "Primary")]
    Primary,
    /// A read-only replica, [`lag`](super::SimServer::lag) behind its primary.
    #[serde(alias = "Replica")]
    Replica,
}
