//! What one snapshot holds, and how it is gathered from the supervisor. Everything here is
//! named by pool key, registered names and redacted targets: never a password.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::backends::{Backend, Role};
use crate::budget::BudgetStats;
use crate::key::PoolKey;
use crate::observe::leaks::LeakReport;
use crate::policy::breaker::BreakerState;
use crate::pool::stats::PoolStats;
use crate::replica_set::members::MemberInfo;
use crate::supervisor::handle::SupervisorHandle;
use crate::supervisor::stats::{HealthReport, HealthStatus, SupervisorStats};

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The wall-clock time of a `tokio::time::Instant` in the past, in Unix milliseconds.
pub(crate) fn unix_ms_of(at: tokio::time::Instant) -> u64 {
    let ago = tokio::time::Instant::now().saturating_duration_since(at);
    unix_ms().saturating_sub(ago.as_millis() as u64)
}

/// A breaker transition or a role change, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EventRecord {
    /// Increasing per feed: the page drops events it already has.
    pub(crate) seq: u64,
    /// `breaker` or `role`.
    pub(crate) kind: &'static str,
    /// Unix milliseconds.
    pub(crate) at: u64,
    /// The pool (full hex key).
    pub(crate) key: String,
    /// The replica set (role changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) set: Option<String>,
    /// `host:port` (role changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
    /// Before (`closed`, `open`, `half_open`; `primary`, `replica`).
    pub(crate) from: &'static str,
    /// After.
    pub(crate) to: &'static str,
    /// Why (breaker transitions; never contains a password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

pub(crate) fn breaker_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    }
}

pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Replica => "replica",
    }
}

/// The supervisor's figures without the per-pool list.
#[derive(Debug, Serialize)]
struct Totals {
    pools: usize,
    pools_created: u64,
    pools_evicted: u64,
    pools_destroyed: u64,
    connections_served: u64,
    idle: usize,
    in_use: usize,
    total: usize,
    waiters: usize,
    budget: BudgetStats,
}

/// The last health check.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Health {
    status: HealthStatus,
    healthy: usize,
    /// `(full hex key, reason)`.
    unhealthy: Vec<(String, String)>,
    /// Unix milliseconds.
    at: u64,
}

impl From<HealthReport> for Health {
    fn from(r: HealthReport) -> Self {
        Self {
            status: r.status,
            healthy: r.healthy,
            unhealthy: r
                .unhealthy
                .into_iter()
                .map(|(k, why)| (k.to_hex(), why))
                .collect(),
            at: unix_ms(),
        }
    }
}

/// One pool.
#[derive(Debug, Serialize)]
struct PoolView {
    /// Full hex key (stable; the page's `data-pool-key`).
    key: String,
    /// The first 12 hex digits.
    short: String,
    /// Registered names, sorted.
    names: Vec<String>,
    /// Where it connects, redacted (password `***`, no query).
    target: String,
    /// The replica set it is a member of, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    set: Option<String>,
    /// Its figures, serialized whole: fields added to `PoolStats` reach the page as they are.
    stats: PoolStats,
    /// Connections held past the leak threshold now, with where they were checked out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    leaks: Vec<LeakReport>,
}

/// One replica set.
#[derive(Debug, Serialize)]
struct SetView {
    name: String,
    members: Vec<MemberView>,
}

#[derive(Debug, Serialize)]
struct MemberView {
    #[serde(flatten)]
    info: MemberInfo,
    /// `lag` in milliseconds (`MemberInfo::lag` serializes as seconds and nanoseconds).
    lag_ms: Option<f64>,
}

/// What the collector asks the supervisor each tick.
pub(crate) struct Gathered {
    stats: SupervisorStats,
    targets: HashMap<PoolKey, (Vec<String>, String)>,
    sets: Vec<(String, Vec<MemberInfo>, HashMap<PoolKey, String>)>,
    leaks: HashMap<PoolKey, Vec<LeakReport>>,
}

/// Ask the supervisor for its figures, its pools and its replica sets (three messages,
/// at once). `Err`: the supervisor is gone.
pub(crate) async fn gather<B: Backend>(sup: &SupervisorHandle<B>) -> Result<Gathered, String> {
    let (stats, pools, sets) = futures::join!(sup.stats(), sup.pools(), sup.replica_sets());
    let err = |e: crate::error::Error| format!("supervisor unavailable: {e}");
    let stats = stats.map_err(err)?;
    let targets = pools
        .map_err(err)?
        .into_iter()
        .map(|l| (l.key, (l.names, l.target)))
        .collect();
    let sets = sets
        .map_err(err)?
        .into_iter()
        .map(|set| {
            // Member targets: the configs' redacted Display, by key.
            let targets = set
                .members()
                .iter()
                .map(|c| (PoolKey::of(c), c.to_string()))
                .collect();
            (set.name().to_string(), set.topology(), targets)
        })
        .collect();
    // Leak reports only of pools that have reported a leak not reclaimed since: one lookup
    // each, and none in the usual case.
    let mut leaks = HashMap::new();
    for p in &stats.per_pool {
        if p.leaks_reported > p.leaks_reclaimed {
            if let Ok(pool) = sup.lookup(p.key).await {
                leaks.insert(p.key, pool.leaks());
            }
        }
    }
    Ok(Gathered {
        stats,
        targets,
        sets,
        leaks,
    })
}

/// The feed's own figures, as each browser is told them.
#[derive(Debug, Serialize)]
pub(crate) struct FeedFigures {
    /// Streams open now.
    pub(crate) clients: usize,
    /// Updates dropped for this browser (it read too slowly).
    pub(crate) dropped: u64,
    /// Updates dropped for every browser since the dashboard started.
    pub(crate) dropped_total: u64,
    /// Milliseconds between snapshots.
    pub(crate) interval_ms: u64,
}

#[derive(Serialize)]
struct Body<'a> {
    at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    supervisor: Option<Totals>,
    health: Option<&'a Health>,
    pools: Vec<PoolView>,
    replica_sets: Vec<SetView>,
    breaker_log: &'a VecDeque<EventRecord>,
    role_log: &'a VecDeque<EventRecord>,
}

/// The snapshot as JSON, starting with `{` and without the `feed` member (added per
/// browser by [`with_feed`]).
pub(crate) fn render(
    gathered: Result<Gathered, String>,
    health: Option<&Health>,
    breaker_log: &VecDeque<EventRecord>,
    role_log: &VecDeque<EventRecord>,
) -> String {
    let mut body = Body {
        at: unix_ms(),
        error: None,
        supervisor: None,
        health,
        pools: Vec::new(),
        replica_sets: Vec::new(),
        breaker_log,
        role_log,
    };
    let error;
    match gathered {
        Err(e) => {
            error = e;
            body.error = Some(&error);
        }
        Ok(g) => fill(&mut body, g),
    }
    serde_json::to_string(&body).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn fill(body: &mut Body<'_>, g: Gathered) {
    let s = g.stats;
    let mut member_of: HashMap<PoolKey, (String, String)> = HashMap::new();
    for (name, members, targets) in &g.sets {
        for m in members {
            let target = targets
                .get(&m.key)
                .cloned()
                .unwrap_or_else(|| m.host.clone());
            member_of.insert(m.key, (name.clone(), target));
        }
    }
    body.pools = s
        .per_pool
        .into_iter()
        .map(|stats| {
            let (names, mut target) = g.targets.get(&stats.key).cloned().unwrap_or_default();
            let set = member_of.get(&stats.key).map(|(set, t)| {
                if target.is_empty() {
                    target = t.clone();
                }
                set.clone()
            });
            PoolView {
                key: stats.key.to_hex(),
                short: stats.key.to_string(),
                names,
                target,
                set,
                leaks: g.leaks.get(&stats.key).cloned().unwrap_or_default(),
                stats,
            }
        })
        .collect();
    body.supervisor = Some(Totals {
        pools: s.pools,
        pools_created: s.pools_created,
        pools_evicted: s.pools_evicted,
        pools_destroyed: s.pools_destroyed,
        connections_served: s.connections_served,
        idle: s.idle,
        in_use: s.in_use,
        total: s.total,
        waiters: s.waiters,
        budget: s.budget,
    });
    body.replica_sets = g
        .sets
        .into_iter()
        .map(|(name, members, _)| SetView {
            name,
            members: members
                .into_iter()
                .map(|info| MemberView {
                    lag_ms: info.lag.map(|d: Duration| d.as_secs_f64() * 1000.0),
                    info,
                })
                .collect(),
        })
        .collect();
}

/// `snapshot` (a JSON object starting with `{`) with `"feed": figures` as its first
/// member, framed as one server-sent event.
pub(crate) fn with_feed(snapshot: &str, figures: &FeedFigures) -> String {
    let feed = serde_json::to_string(figures).unwrap_or_else(|_| "{}".into());
    let rest = snapshot.strip_prefix('{').unwrap_or(snapshot);
    let sep = if rest.starts_with('}') { "" } else { "," };
    format!("event: snapshot\ndata: {{\"feed\":{feed}{sep}{rest}\n\n")
}

/// One event framed as a server-sent event.
pub(crate) fn event_frame(record: &EventRecord) -> String {
    let json = serde_json::to_string(record).unwrap_or_else(|_| "{}".into());
    format!("event: {}\ndata: {json}\n\n", record.kind)
}
