//! One simulated server: the [`SimServer`] handle and the state behind it (behaviour,
//! scheduled outages, live connections, counters).
//!
//! The state is private to this folder. `faults.rs` (outages, kills, armed failures, the
//! password), `replication.rs` (role, lag, position) and `counters.rs` add the rest of
//! the public methods of [`SimServer`]; the connections and the backend go through the
//! `pub(super)` methods at the end of this file.

mod conn_shared;
mod counters;
mod faults;
mod replication;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::{SimBehavior, SimRole};
use crate::connection::ConnectionConfig;
use crate::error::{BackendError, BackendErrorKind};
use crate::secret::Secret;

pub(super) use conn_shared::ConnShared;

const RELAXED: Ordering = Ordering::Relaxed;

/// A window during which the server is down.
struct Outage {
    start: Instant,
    end: Instant,
    /// Its start has been seen and the connections open then were killed.
    begun: bool,
}

/// Server state that needs a lock. Never held across an `.await`.
struct ServerState {
    behavior: SimBehavior,
    rng: SmallRng,
    outages: Vec<Outage>,
    password: Option<Secret>,
    role: SimRole,
    lag: Duration,
    /// Writes applied here (a primary) or replayed (a replica, see `upstream`).
    position: u64,
    /// The primary a replica replays from.
    upstream: Option<SimServer>,
    /// Replay is paused: the replica's position stays where it was.
    replay_paused: bool,
    /// Live connections, for server-side kills.
    conns: HashMap<u64, Arc<ConnShared>>,
    /// Connections it accepts at most; past it a connect fails for capacity.
    max_connections: Option<usize>,
    /// Connects to fail with these kinds, in order, before anything else is checked.
    armed_failures: std::collections::VecDeque<BackendErrorKind>,
}

struct ServerInner {
    name: String,
    next_conn_id: Arc<AtomicU64>,
    /// Manual up/down switch ([`SimServer::go_down`]). Written under the state lock.
    up: AtomicBool,
    /// `state.outages.len()`, so operations skip the clock when no outage is scheduled.
    outage_count: AtomicUsize,

    // Mirrors of `state.behavior`, read lock-free on the hot paths.
    connect_latency_ns: AtomicU64,
    query_latency_ns: AtomicU64,
    connect_failure_bits: AtomicU64,
    query_failure_bits: AtomicU64,

    // Armed hooks.
    fail_connects: AtomicUsize,
    fail_probes: AtomicUsize,
    /// The listener is gone: new connects are refused, open connections keep working.
    refusing: AtomicBool,
    panic_connects: AtomicUsize,
    panic_probes: AtomicUsize,
    panic_resets: AtomicUsize,
    panic_checks: AtomicUsize,
    panic_reset_checks: AtomicUsize,
    stall_connects: AtomicUsize,
    stall_probes: AtomicUsize,
    stall_resets: AtomicUsize,

    // Counters.
    open: AtomicUsize,
    connects: AtomicU64,
    connect_attempts: AtomicU64,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    queries: AtomicU64,

    state: Mutex<ServerState>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Disarm one armed hook, if any. Lock-free and free when nothing is armed.
#[inline]
fn take(hook: &AtomicUsize) -> bool {
    hook.load(RELAXED) != 0
        && hook
            .fetch_update(RELAXED, RELAXED, |n| n.checked_sub(1))
            .is_ok()
}

/// Whether an event of probability `rate` happens; `draw` is only called for 0 < rate < 1.
fn roll(rate: f64, draw: impl FnOnce() -> f64) -> bool {
    if rate >= 1.0 {
        true
    } else if rate > 0.0 {
        draw() < rate
    } else {
        false // zero, negative or NaN
    }
}

impl ServerInner {
    fn set_behavior_locked(&self, st: &mut ServerState, b: SimBehavior) {
        self.connect_latency_ns
            .store(nanos(b.connect_latency), RELAXED);
        self.query_latency_ns.store(nanos(b.query_latency), RELAXED);
        self.connect_failure_bits
            .store(b.connect_failure_rate.to_bits(), RELAXED);
        self.query_failure_bits
            .store(b.query_failure_rate.to_bits(), RELAXED);
        st.behavior = b;
    }

    /// Kill every live connection. Returns how many were alive.
    fn kill_all_locked(&self, st: &mut ServerState) -> usize {
        st.conns
            .drain()
            .filter(|(_, conn)| conn.mark_dead(&self.open))
            .count()
    }

    /// Start the outages whose time has come (killing the connections open then) and forget
    /// the finished ones. Returns whether an outage is in progress at `now`.
    ///
    /// Every connect registers its connection after running this under the same lock, so
    /// a connection is never registered after an outage began without that outage having
    /// been started: killing everything registered when an outage starts only kills
    /// connections opened before it.
    fn sync_outages_locked(&self, st: &mut ServerState, now: Instant) -> bool {
        let mut down = false;
        let mut started = false;
        for outage in &mut st.outages {
            if outage.start <= now {
                if !outage.begun {
                    outage.begun = true;
                    started = true;
                }
                down |= now < outage.end;
            }
        }
        if started {
            let killed = self.kill_all_locked(st);
            tracing::debug!(server = %self.name, killed, "simulated outage began");
        }
        st.outages.retain(|o| !(o.begun && o.end <= now));
        self.outage_count.store(st.outages.len(), RELAXED);
        down
    }

    /// [`sync_outages_locked`](Self::sync_outages_locked), without the clock or the lock
    /// when no outage is scheduled.
    #[inline]
    fn sync_outages(&self) -> bool {
        if self.outage_count.load(RELAXED) == 0 {
            return false;
        }
        let now = Instant::now();
        let mut st = self.state.lock();
        self.sync_outages_locked(&mut st, now)
    }

    fn is_up(&self) -> bool {
        let in_outage = self.sync_outages();
        !in_outage && self.up.load(Ordering::Acquire)
    }

    /// Server-side kill of one connection. Returns whether it was alive.
    fn kill(&self, conn: &ConnShared) -> bool {
        self.state.lock().conns.remove(&conn.id());
        conn.mark_dead(&self.open)
    }
}

/// Counts a connect as in flight until dropped, even when the connect future is dropped.
pub(super) struct InFlight<'a>(&'a ServerInner);

impl<'a> InFlight<'a> {
    fn enter(server: &'a ServerInner) -> Self {
        let now = server.in_flight.fetch_add(1, RELAXED) + 1;
        server.peak_in_flight.fetch_max(now, RELAXED);
        Self(server)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, RELAXED);
    }
}

/// Handle to one simulated server. Cloning shares it.
///
/// `Debug` shows the name, state and counters, never the password.
#[derive(Clone)]
pub struct SimServer {
    inner: Arc<ServerInner>,
}

impl SimServer {
    pub(super) fn create(
        name: &str,
        seed: u64,
        behavior: SimBehavior,
        ids: Arc<AtomicU64>,
    ) -> Self {
        let inner = ServerInner {
            name: name.to_owned(),
            next_conn_id: ids,
            up: AtomicBool::new(true),
            outage_count: AtomicUsize::new(0),
            connect_latency_ns: AtomicU64::new(0),
            query_latency_ns: AtomicU64::new(0),
            connect_failure_bits: AtomicU64::new(0),
            query_failure_bits: AtomicU64::new(0),
            fail_connects: AtomicUsize::new(0),
            fail_probes: AtomicUsize::new(0),
            refusing: AtomicBool::new(false),
            panic_connects: AtomicUsize::new(0),
            panic_probes: AtomicUsize::new(0),
            panic_resets: AtomicUsize::new(0),
            panic_checks: AtomicUsize::new(0),
            panic_reset_checks: AtomicUsize::new(0),
            stall_connects: AtomicUsize::new(0),
            stall_probes: AtomicUsize::new(0),
            stall_resets: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            connects: AtomicU64::new(0),
            connect_attempts: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            queries: AtomicU64::new(0),
            state: Mutex::new(ServerState {
                behavior: SimBehavior::default(),
                rng: SmallRng::seed_from_u64(seed),
                outages: Vec::new(),
                password: None,
                role: SimRole::default(),
                lag: Duration::ZERO,
                position: 0,
                upstream: None,
                replay_paused: false,
                conns: HashMap::new(),
                max_connections: None,
                armed_failures: std::collections::VecDeque::new(),
            }),
        };
        {
            let mut st = inner.state.lock();
            inner.set_behavior_locked(&mut st, behavior);
        }
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The server's name (`host:port` of the configs reaching it).
    pub fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// Change how the server performs, for open connections too (per-connection
    /// overrides from config options still win).
    pub fn set_behavior(&self, b: SimBehavior) {
        let mut st = self.inner.state.lock();
        self.inner.set_behavior_locked(&mut st, b);
    }

    /// How the server performs.
    pub fn behavior(&self) -> SimBehavior {
        self.inner.state.lock().behavior.clone()
    }
}

impl fmt::Debug for SimServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let st = inner.state.lock();
        f.debug_struct("SimServer")
            .field("name", &inner.name)
            .field("up", &inner.up.load(RELAXED))
            .field("scheduled_outages", &st.outages.len())
            .field("role", &st.role)
            .field("lag", &st.lag)
            .field("behavior", &st.behavior)
            .field("password", &st.password.as_ref().map(|_| "***"))
            .field("open_connections", &inner.open.load(RELAXED))
            .field("connects", &inner.connects.load(RELAXED))
            .field("connect_attempts", &inner.connect_attempts.load(RELAXED))
            .field("in_flight_connects", &inner.in_flight.load(RELAXED))
            .field("queries", &inner.queries.load(RELAXED))
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// What the connections and the backend ask of the server
// ---------------------------------------------------------------------------------------

/// An operation that an armed panic or stall hits (see `faults.rs`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Hook {
    PanicConnect,
    StallConnect,
    PanicProbe,
    StallProbe,
    PanicReset,
    StallReset,
    FailProbe,
    PanicCheck,
    PanicResetCheck,
}

impl SimServer {
    /// Disarm one armed `hook`, if any. Lock-free and free when nothing is armed.
    #[inline]
    pub(super) fn take_hook(&self, hook: Hook) -> bool {
        let inner = &*self.inner;
        take(match hook {
            Hook::PanicConnect => &inner.panic_connects,
            Hook::StallConnect => &inner.stall_connects,
            Hook::PanicProbe => &inner.panic_probes,
            Hook::StallProbe => &inner.stall_probes,
            Hook::PanicReset => &inner.panic_resets,
            Hook::StallReset => &inner.stall_resets,
            Hook::FailProbe => &inner.fail_probes,
            Hook::PanicCheck => &inner.panic_checks,
            Hook::PanicResetCheck => &inner.panic_reset_checks,
        })
    }

    /// Count a connect attempt, and the connect as in flight until the guard is dropped.
    pub(super) fn begin_connect(&self) -> InFlight<'_> {
        let inner = &*self.inner;
        inner.connect_attempts.fetch_add(1, RELAXED);
        InFlight::enter(inner)
    }

    /// The behaviour's connect latency.
    pub(super) fn connect_latency(&self) -> Duration {
        Duration::from_nanos(self.inner.connect_latency_ns.load(RELAXED))
    }

    /// The behaviour's connect failure rate.
    pub(super) fn connect_failure_rate(&self) -> f64 {
        f64::from_bits(self.inner.connect_failure_bits.load(RELAXED))
    }

    /// The server side of a connect, after its latency: refuse it if the server is down,
    /// if a failure is armed, if the password does not match, or by the failure `rate`;
    /// otherwise register the new connection.
    pub(super) fn accept(
        &self,
        config: &ConnectionConfig,
        rate: f64,
    ) -> Result<Arc<ConnShared>, BackendError> {
        let inner = &*self.inner;
        let mut st = inner.state.lock();
        let in_outage = inner.outage_count.load(RELAXED) != 0
            && inner.sync_outages_locked(&mut st, Instant::now());
        if in_outage || !inner.up.load(Ordering::Acquire) || inner.refusing.load(RELAXED) {
            return Err(BackendError::new(
                BackendErrorKind::Connect,
                "connection refused",
            ));
        }
        if let Some(kind) = st.armed_failures.pop_front() {
            return Err(BackendError::new(
                kind,
                format!("simulated {kind:?} failure"),
            ));
        }
        if st
            .max_connections
            .is_some_and(|max| inner.open.load(RELAXED) >= max)
        {
            return Err(BackendError::new(
                BackendErrorKind::Capacity,
                "sorry, too many clients already",
            ));
        }
        if take(&inner.fail_connects) {
            return Err(BackendError::new(
                BackendErrorKind::Connect,
                "simulated connect failure",
            ));
        }
        if let Some(required) = &st.password {
            if config.password.as_ref().map(Secret::expose) != Some(required.expose()) {
                return Err(BackendError::new(
                    BackendErrorKind::Auth,
                    format!(
                        "password authentication failed for user \"{}\"",
                        config.user.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        if roll(rate, || st.rng.random::<f64>()) {
            return Err(BackendError::new(
                BackendErrorKind::Connect,
                "simulated connect failure",
            ));
        }
        let id = inner.next_conn_id.fetch_add(1, RELAXED);
        let shared = Arc::new(ConnShared::new(id));
        st.conns.insert(id, shared.clone());
        inner.open.fetch_add(1, RELAXED);
        inner.connects.fetch_add(1, RELAXED);
        Ok(shared)
    }

    /// [`sync_outages`](ServerInner::sync_outages): start and end the scheduled outages
    /// whose time has come. Returns whether one is in progress.
    #[inline]
    pub(super) fn sync_outages(&self) -> bool {
        self.inner.sync_outages()
    }

    /// The manual up/down switch: not [down](Self::go_down). Outages aside.
    pub(super) fn switched_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// Server-side kill of one connection. Returns whether it was alive.
    pub(super) fn kill(&self, conn: &ConnShared) -> bool {
        self.inner.kill(conn)
    }

    /// The behaviour's query latency.
    pub(super) fn query_latency(&self) -> Duration {
        Duration::from_nanos(self.inner.query_latency_ns.load(RELAXED))
    }

    /// The behaviour's query failure rate.
    pub(super) fn query_failure_rate(&self) -> f64 {
        f64::from_bits(self.inner.query_failure_bits.load(RELAXED))
    }

    /// A query, probe or reset reached the server over a live connection.
    pub(super) fn count_query(&self) {
        self.inner.queries.fetch_add(1, RELAXED);
    }

    /// Whether a query fails by the failure `rate`, drawn from the server's generator.
    pub(super) fn query_fails(&self, rate: f64) -> bool {
        roll(rate, || self.inner.state.lock().rng.random::<f64>())
    }

    /// Apply a write: a replica refuses it, a primary's position moves on.
    pub(super) fn apply_write(&self) -> Result<(), BackendError> {
        let mut st = self.inner.state.lock();
        if st.role == SimRole::Replica {
            return Err(BackendError::new(
                BackendErrorKind::Query,
                "cannot execute a write on a read-only replica",
            ));
        }
        st.position += 1;
        Ok(())
    }

    /// The primary a replica replays from.
    pub(super) fn upstream(&self) -> Option<SimServer> {
        self.inner.state.lock().upstream.clone()
    }
}
