//! Every metric name and attribute key poolwarden records, in one place. The standard
//! ones follow the OpenTelemetry semantic conventions for database client connection
//! pools; poolwarden's own start with [`PREFIX`]. `docs/observability.md` lists them with
//! their Prometheus renderings.

use crate::backends::Role;
use crate::error::BackendErrorKind;
use crate::policy::breaker::BreakerState;

/// The prefix of every metric that is poolwarden's own (not an OpenTelemetry name).
pub const PREFIX: &str = "poolwarden.";

// OpenTelemetry: database client connection pools.

/// Gauge: open connections, by [`STATE`] (`idle` | `used`).
pub const CONNECTION_COUNT: &str = "db.client.connection.count";
/// Gauge: the most idle connections the pool keeps (`max_size`).
pub const IDLE_MAX: &str = "db.client.connection.idle.max";
/// Gauge: the fewest idle connections the pool keeps (`min_idle`).
pub const IDLE_MIN: &str = "db.client.connection.idle.min";
/// Gauge: the most open connections allowed (`max_size + max_overflow`).
pub const MAX: &str = "db.client.connection.max";
/// Gauge: acquires waiting for a connection.
pub const PENDING_REQUESTS: &str = "db.client.connection.pending_requests";
/// Counter: acquires that timed out.
pub const TIMEOUTS: &str = "db.client.connection.timeouts";
/// Histogram (seconds): how long opening a connection took.
pub const CREATE_TIME: &str = "db.client.connection.create_time";
/// Histogram (seconds): how long an acquire waited for its connection.
pub const WAIT_TIME: &str = "db.client.connection.wait_time";
/// Histogram (seconds): how long a connection was checked out.
pub const USE_TIME: &str = "db.client.connection.use_time";

/// Attribute on every series: the pool's registered name, else `key:<12 hex digits>`.
pub const POOL_NAME: &str = "db.client.connection.pool.name";
/// Attribute of [`CONNECTION_COUNT`]: `idle` or `used`.
pub const STATE: &str = "db.client.connection.state";

// poolwarden's own.

/// Counter: connections closed, by [`REASON`] (see [`CloseReason`](super::CloseReason)).
pub const CLOSED: &str = "poolwarden.connections.closed";
/// Gauge: the breaker's state: 0 closed, 1 half-open, 2 open.
pub const BREAKER_STATE: &str = "poolwarden.breaker.state";
/// Counter: breaker transitions, by [`TO`] (`closed` | `open` | `half_open`).
pub const BREAKER_TRANSITIONS: &str = "poolwarden.breaker.transitions";
/// Counter: pool actor restarts.
pub const RESTARTS: &str = "poolwarden.restarts";
/// Counter: connections reported as leaked (held past `leak_threshold`).
pub const LEAKS_REPORTED: &str = "poolwarden.leaks.reported";
/// Counter: leaked connections whose slot was reclaimed (`leak_reclaim_after`).
pub const LEAKS_RECLAIMED: &str = "poolwarden.leaks.reclaimed";
/// Counter: acquires refused with `PoolSaturated` (`max_waiters` reached).
pub const SATURATED: &str = "poolwarden.acquire.saturated";
/// Counter: connect attempts.
pub const CONNECT_ATTEMPTS: &str = "poolwarden.connect.attempts";
/// Counter: failed connect attempts, by [`ERROR_KIND`].
pub const CONNECT_FAILURES: &str = "poolwarden.connect.failures";

/// Counter: reads routed to a replica-set member.
pub const SET_READS: &str = "poolwarden.replica_set.reads";
/// Counter: writes routed to a replica-set member.
pub const SET_WRITES: &str = "poolwarden.replica_set.writes";
/// Counter: times a member was found unreachable and left out of routing.
pub const SET_EJECTIONS: &str = "poolwarden.replica_set.ejections";
/// Counter: times an unreachable member answered again and was routed to again.
pub const SET_READMISSIONS: &str = "poolwarden.replica_set.readmissions";
/// Counter: role changes of a member, by [`TO`] (`primary` | `replica`).
pub const SET_ROLE_CHANGES: &str = "poolwarden.replica_set.role_changes";
/// Gauge (seconds): a member's replication lag, as its last topology probe reported it.
pub const SET_LAG: &str = "poolwarden.replica_set.lag";

/// Attribute: why a connection was closed.
pub const REASON: &str = "reason";
/// Attribute: the state or role moved to.
pub const TO: &str = "to";
/// Attribute: a [`BackendErrorKind`], snake case.
pub const ERROR_KIND: &str = "error.kind";
/// Attribute of replica-set series: the set's name.
pub const SET: &str = "poolwarden.replica_set.name";

/// The [`ERROR_KIND`] value of `kind`.
pub fn error_kind(kind: BackendErrorKind) -> &'static str {
    match kind {
        BackendErrorKind::Connect => "connect",
        BackendErrorKind::Auth => "auth",
        BackendErrorKind::Timeout => "timeout",
        BackendErrorKind::Closed => "closed",
        BackendErrorKind::Config => "config",
        BackendErrorKind::Capacity => "capacity",
        BackendErrorKind::Query => "query",
        BackendErrorKind::Other => "other",
    }
}

/// Every [`BackendErrorKind`], in the order of [`error_kind_index`].
pub const ERROR_KINDS: [BackendErrorKind; 8] = [
    BackendErrorKind::Connect,
    BackendErrorKind::Auth,
    BackendErrorKind::Timeout,
    BackendErrorKind::Closed,
    BackendErrorKind::Config,
    BackendErrorKind::Capacity,
    BackendErrorKind::Query,
    BackendErrorKind::Other,
];

/// Where `kind` is in [`ERROR_KINDS`].
pub fn error_kind_index(kind: BackendErrorKind) -> usize {
    ERROR_KINDS
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is listed")
}

/// The [`TO`] value of a breaker state.
pub fn breaker_state(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    }
}

/// The [`BREAKER_STATE`] gauge's value of a state.
pub fn breaker_code(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    }
}

/// The [`TO`] value of a role.
pub fn role(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Replica => "replica",
    }
}

/// Give the recorder each name's unit and description (so an exporter can render
/// `_seconds` suffixes and `# HELP` lines). Repeated per pool: describing twice is
/// harmless, and a recorder installed after the first pool still learns them.
#[cfg(feature = "metrics")]
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        CONNECTION_COUNT,
        Unit::Count,
        "Open connections, by state (idle, used)."
    );
    describe_gauge!(
        IDLE_MAX,
        Unit::Count,
        "The most idle connections the pool keeps (max_size)."
    );
    describe_gauge!(
        IDLE_MIN,
        Unit::Count,
        "The fewest idle connections the pool keeps (min_idle)."
    );
    describe_gauge!(
        MAX,
        Unit::Count,
        "The most open connections allowed (max_size + max_overflow)."
    );
    describe_gauge!(
        PENDING_REQUESTS,
        Unit::Count,
        "Acquires waiting for a connection."
    );
    describe_counter!(TIMEOUTS, Unit::Count, "Acquires that timed out.");
    describe_histogram!(CREATE_TIME, Unit::Seconds, "Time to open a connection.");
    describe_histogram!(
        WAIT_TIME,
        Unit::Seconds,
        "Time an acquire waited for its connection."
    );
    describe_histogram!(
        USE_TIME,
        Unit::Seconds,
        "Time a connection was checked out."
    );
    describe_counter!(CLOSED, Unit::Count, "Connections closed, by reason.");
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(
        BREAKER_TRANSITIONS,
        Unit::Count,
        "Circuit breaker transitions, by state moved to."
    );
    describe_counter!(RESTARTS, Unit::Count, "Pool actor restarts.");
    describe_counter!(
        LEAKS_REPORTED,
        Unit::Count,
        "Connections reported as leaked."
    );
    describe_counter!(
        LEAKS_RECLAIMED,
        Unit::Count,
        "Leaked connections whose slot was reclaimed."
    );
    describe_counter!(
        SATURATED,
        Unit::Count,
        "Acquires refused: too many waiters (PoolSaturated)."
    );
    describe_counter!(CONNECT_ATTEMPTS, Unit::Count, "Connect attempts.");
    describe_counter!(
        CONNECT_FAILURES,
        Unit::Count,
        "Failed connect attempts, by error kind."
    );
    describe_counter!(
        SET_READS,
        Unit::Count,
        "Reads routed to a replica-set member."
    );
    describe_counter!(
        SET_WRITES,
        Unit::Count,
        "Writes routed to a replica-set member."
    );
    describe_counter!(
        SET_EJECTIONS,
        Unit::Count,
        "Times a member was left out of routing as unreachable."
    );
    describe_counter!(
        SET_READMISSIONS,
        Unit::Count,
        "Times an unreachable member was routed to again."
    );
    describe_counter!(
        SET_ROLE_CHANGES,
        Unit::Count,
        "Role changes of a member, by role moved to."
    );
    describe_gauge!(
        SET_LAG,
        Unit::Seconds,
        "Replication lag of a member at its last topology probe."
    );
}
