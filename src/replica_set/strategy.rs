//! The read strategies a replica set offers (`router.rs` carries them out).

use serde::{Deserialize, Serialize};

/// How reads are spread over replicas.
///
/// Every strategy picks among the *usable* replicas only (reachable at the last topology
/// probe, breaker not open, within `max_lag`, past a read's causality token); with none,
/// reads fall back to the primary when the set allows it.
///
/// The default is [`PowerOfTwo`](Self::PowerOfTwo): it steers reads away from a slow or
/// busy replica as [`LeastLoaded`](Self::LeastLoaded) does, at the cost of two random draws,
/// and never sends every read to one member the way a single least-loaded pick can (the
/// default was [`RoundRobin`](Self::RoundRobin) before; set it to keep that behaviour).
///
/// ```
/// use poolwarden::{ConnectionConfig, ReplicaSetConfig, Strategy};
/// let cfg = ReplicaSetConfig::new(
///     "orders",
///     ConnectionConfig::sim("db1"),
///     vec![ConnectionConfig::sim("db2"), ConnectionConfig::sim("db3")],
/// );
/// assert_eq!(cfg.strategy, Strategy::PowerOfTwo);
/// // In a TOML or environment setting, by its snake_case name.
/// let cfg: ReplicaSetConfig = toml::from_str(r#"
///     name = "orders"
///     strategy = "round_robin"
///     primary = { backend = "sim", hosts = [{ host = "db1", port = 1 }] }
/// "#).unwrap();
/// assert_eq!(cfg.strategy, Strategy::RoundRobin);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each usable replica in turn (`round_robin`). Ignores load: a slow replica still gets
    /// its full share, and the callers pile up on it.
    RoundRobin,
    /// A usable replica drawn uniformly (`random`).
    Random,
    /// The usable replica with the fewest checked-out plus waiting; ties round-robin
    /// (`least_loaded`). With equal loads (light traffic) it is round-robin.
    LeastLoaded,
    /// Power of two choices (`power_of_two`): two distinct usable replicas drawn at random,
    /// the one with fewer checked-out plus waiting taken (a tie: the first drawn), as
    /// Envoy's `LEAST_REQUEST` balancer does by default. A replica that serves slowly holds
    /// its connections longer and so loses most draws; with light traffic (equal loads) it
    /// is random. The default.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, ReplicaSetConfig, Strategy, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let mut cfg = ReplicaSetConfig::new(
    ///     "orders",
    ///     ConnectionConfig::sim("db1"),
    ///     vec![ConnectionConfig::sim("db2"), ConnectionConfig::sim("db3")],
    /// );
    /// cfg.strategy = Strategy::PowerOfTwo;
    /// let set = sup.replica_set(cfg).await?;
    /// let conn = set.read().await?; // on db2 or db3, whichever of the two is less busy
    /// # drop(conn);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[default]
    PowerOfTwo,
}
