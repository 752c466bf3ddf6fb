//! The simulated backend: an in-process world of named database servers with fault
//! injection.
//!
//! [`SimBackend`] is a complete [`Backend`]: examples, tests and benchmarks run pools on it
//! without a database. Every server of the world is reached through a [`SimServer`] handle,
//! which injects faults (outages, killed connections, failing, panicking or stalling
//! operations, wrong passwords, random failures drawn from a seeded generator) and counts
//! what the pools did to it (open connections, connects, in-flight connects, queries).
//!
//! A config connects to the server named by its
//! [`primary_host()`](ConnectionConfig::primary_host), so `ConnectionConfig::sim("db1")`
//! reaches the server `"db1:1"`. Servers are created on first use with the world's default
//! [`SimBehavior`].
//!
//! Time is [`tokio::time`] time: latencies and scheduled outages follow a paused test clock.
//! Zero latencies never touch the timer, so the backend also works (and costs almost
//! nothing) outside a runtime.
//!
//! ```
//! use std::time::Duration;
//!
//! use poolwarden::backends::sim::{SimBackend, SimBehavior};
//! use poolwarden::BackendErrorKind;
//! use poolwarden::{Backend, ConnectionConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let sim = SimBackend::new(42);
//! let cfg = ConnectionConfig::sim("db1");
//! let server = sim.server(&cfg.primary_host());
//! server.set_behavior(SimBehavior {
//!     query_latency: Duration::from_millis(1),
//!     ..SimBehavior::default()
//! });
//!
//! let mut conn = sim.connect(&cfg).await.unwrap();
//! assert_eq!(conn.query("SELECT 1").await.unwrap(), 1);
//! assert_eq!(server.open_connections(), 1);
//!
//! // The server goes down: open connections are killed, new ones are refused.
//! server.go_down();
//! assert!(sim.is_broken(&mut conn));
//! assert_eq!(server.open_connections(), 0);
//! let err = sim.connect(&cfg).await.unwrap_err();
//! assert_eq!(err.kind(), BackendErrorKind::Connect);
//!
//! server.come_up();
//! server.fail_next_connects(1);
//! assert!(sim.connect(&cfg).await.is_err());
//! assert!(sim.connect(&cfg).await.is_ok());
//! assert_eq!(server.connect_attempts(), 4);
//! # });
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::backend::{Backend, MemberStatus};
use crate::config::connection::ConnectionConfig;
use crate::error::{BackendError, BackendErrorKind};
use crate::router::Role;
use crate::secret::Secret;

const RELAXED: Ordering = Ordering::Relaxed;

// ---------------------------------------------------------------------------------------
// Behaviour and role
// ---------------------------------------------------------------------------------------

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
    /// A read-only replica, [`lag`](SimServer::lag) behind its primary.
    #[serde(alias = "Replica")]
    Replica,
}

// ---------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------

struct World {
    seed: u64,
    next_conn_id: Arc<AtomicU64>,
    default_behavior: Mutex<SimBehavior>,
    servers: Mutex<BTreeMap<String, SimServer>>,
}

/// The simulated world: a set of named servers, and the [`Backend`] connecting to them.
///
/// Cloning shares the world. [`Default`] is `SimBackend::new(0)`.
#[derive(Clone)]
pub struct SimBackend {
    world: Arc<World>,
}

impl SimBackend {
    /// An empty world whose random failures are drawn from generators seeded by `seed`:
    /// the same seed and the same operations give the same failures.
    pub fn new(seed: u64) -> Self {
        Self {
            world: Arc::new(World {
                seed,
                next_conn_id: Arc::new(AtomicU64::new(1)),
                default_behavior: Mutex::new(SimBehavior::default()),
                servers: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The server called `name`, created with the default behaviour on first use. A config
    /// connects to `server(&config.primary_host())`.
    pub fn server(&self, name: &str) -> SimServer {
        let mut servers = self.world.servers.lock();
        if let Some(server) = servers.get(name) {
            return server.clone();
        }
        let behavior = self.world.default_behavior.lock().clone();
        let server = SimServer::create(
            name,
            server_seed(self.world.seed, name),
            behavior,
            self.world.next_conn_id.clone(),
        );
        servers.insert(name.to_owned(), server.clone());
        server
    }

    /// The behaviour of servers created after this call. Existing servers keep theirs.
    pub fn set_default_behavior(&self, b: SimBehavior) {
        *self.world.default_behavior.lock() = b;
    }

    /// Every server created so far, sorted by name.
    pub fn servers(&self) -> Vec<SimServer> {
        self.world.servers.lock().values().cloned().collect()
    }
}

impl Default for SimBackend {
    fn default() -> Self {
        Self::new(0)
    }
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.world.servers.lock().keys().cloned().collect();
        f.debug_struct("SimBackend")
            .field("seed", &self.world.seed)
            .field("servers", &names)
            .finish()
    }
}

/// A stable (process- and run-independent) seed for the server `name` of a world.
fn server_seed(world_seed: u64, name: &str) -> u64 {
    // FNV-1a: std's hashers are randomly keyed.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    world_seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ hash
}

// ---------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------

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
    panic_connects: AtomicUsize,
    panic_probes: AtomicUsize,
    panic_resets: AtomicUsize,
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
        self.state.lock().conns.remove(&conn.id);
        conn.mark_dead(&self.open)
    }
}

/// Counts a connect as in flight until dropped, even when the connect future is dropped.
struct InFlight<'a>(&'a ServerInner);

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
    fn create(name: &str, seed: u64, behavior: SimBehavior, ids: Arc<AtomicU64>) -> Self {
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
            panic_connects: AtomicUsize::new(0),
            panic_probes: AtomicUsize::new(0),
            panic_resets: AtomicUsize::new(0),
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

    /// Take the server down: new connects fail with a
    /// [`Connect`](BackendErrorKind::Connect) error (`connection refused`) and every open
    /// connection is killed.
    pub fn go_down(&self) {
        let mut st = self.inner.state.lock();
        self.inner.up.store(false, Ordering::Release);
        let killed = self.inner.kill_all_locked(&mut st);
        tracing::debug!(server = %self.inner.name, killed, "simulated server went down");
    }

    /// Bring the server back up. Also ends a [scheduled outage](Self::schedule_outage) in
    /// progress; outages that have not begun yet still happen.
    pub fn come_up(&self) {
        let now = Instant::now();
        let mut st = self.inner.state.lock();
        self.inner.sync_outages_locked(&mut st, now);
        for outage in &mut st.outages {
            if outage.begun && now < outage.end {
                outage.end = now;
            }
        }
        self.inner.sync_outages_locked(&mut st, now);
        self.inner.up.store(true, Ordering::Release);
    }

    /// Whether new connects can succeed now: not [down](Self::go_down) and not inside a
    /// [scheduled outage](Self::schedule_outage).
    pub fn is_up(&self) -> bool {
        self.inner.is_up()
    }

    /// Schedule an outage: the server is down from `now + start_after` until
    /// `now + start_after + duration` ([`tokio::time::Instant`], so a paused clock works).
    ///
    /// The connections open when the outage begins are killed; this is noticed by the next
    /// operation on the server or any of its connections (including
    /// [`is_broken`](Backend::is_broken) and the counters). A zero `duration` is a restart
    /// blip: connections are killed but connects never fail.
    pub fn schedule_outage(&self, start_after: Duration, duration: Duration) {
        let now = Instant::now();
        let start = now + start_after;
        let mut st = self.inner.state.lock();
        st.outages.push(Outage {
            start,
            end: start + duration,
            begun: false,
        });
        self.inner.sync_outages_locked(&mut st, now);
    }

    /// Server-side kill of the connection with this [`id`](SimConnection::id). Returns
    /// whether such a connection was alive on this server.
    pub fn kill_connection(&self, id: u64) -> bool {
        let conn = self.inner.state.lock().conns.remove(&id);
        conn.is_some_and(|c| c.mark_dead(&self.inner.open))
    }

    /// Kill every open connection. Returns how many there were.
    pub fn kill_all(&self) -> usize {
        let mut st = self.inner.state.lock();
        self.inner.kill_all_locked(&mut st)
    }

    /// The next `n` connects that reach the server (it is up) fail with a
    /// [`Connect`](BackendErrorKind::Connect) error. Adds to the connects already armed.
    pub fn fail_next_connects(&self, n: usize) {
        self.inner.fail_connects.fetch_add(n, RELAXED);
    }

    /// The next `n` connect calls panic with `simulated panic in connect`.
    pub fn panic_on_next_connects(&self, n: usize) {
        self.inner.panic_connects.fetch_add(n, RELAXED);
    }

    /// The next `n` probes panic with `simulated panic in probe`.
    pub fn panic_on_next_probes(&self, n: usize) {
        self.inner.panic_probes.fetch_add(n, RELAXED);
    }

    /// The next `n` resets panic with `simulated panic in reset`.
    pub fn panic_on_next_resets(&self, n: usize) {
        self.inner.panic_resets.fetch_add(n, RELAXED);
    }

    /// The next `n` connect futures never complete. They count as in flight until dropped.
    pub fn stall_next_connects(&self, n: usize) {
        self.inner.stall_connects.fetch_add(n, RELAXED);
    }

    /// The next `n` probe futures never complete. Dropping one kills its connection (a
    /// command cancelled mid-flight leaves it unusable).
    pub fn stall_next_probes(&self, n: usize) {
        self.inner.stall_probes.fetch_add(n, RELAXED);
    }

    /// The next `n` reset futures never complete. Dropping one kills its connection.
    pub fn stall_next_resets(&self, n: usize) {
        self.inner.stall_resets.fetch_add(n, RELAXED);
    }

    /// Require a password. While set, a connect whose config password differs (or is
    /// missing) fails with an [`Auth`](BackendErrorKind::Auth) error
    /// `password authentication failed for user "<user>"`, which names neither password.
    /// Open connections are not affected.
    pub fn set_password(&self, pw: Option<&str>) {
        self.inner.state.lock().password = pw.map(Secret::new);
    }

    /// Make this server a replica of `primary`: its role becomes replica and its
    /// position follows the primary's (unless replay is paused).
    pub fn replicate_from(&self, primary: &SimServer) {
        // What it replayed so far stays replayed when it is pointed elsewhere.
        let position = self.position();
        let mut st = self.inner.state.lock();
        st.role = SimRole::Replica;
        st.upstream = Some(primary.clone());
        st.position = position;
    }

    /// Promote a replica: it stops replaying and takes writes from its replayed position.
    pub fn promote(&self) {
        let position = self.position();
        let mut st = self.inner.state.lock();
        st.role = SimRole::Primary;
        st.upstream = None;
        st.replay_paused = false;
        st.position = position;
    }

    /// Stop replaying: the position stays, the lag grows with the primary's writes.
    pub fn pause_replay(&self) {
        let position = self.position();
        let mut st = self.inner.state.lock();
        st.position = position;
        st.replay_paused = true;
    }

    /// Catch up and follow the primary again.
    pub fn resume_replay(&self) {
        self.inner.state.lock().replay_paused = false;
    }

    /// Writes applied (a primary) or replayed (a replica).
    pub fn position(&self) -> u64 {
        // A replica of a replica follows the chain; a chain that loops back (a
        // misconfigured test) stops after a few hops instead of recursing forever.
        self.position_within(8)
    }

    fn position_within(&self, hops: usize) -> u64 {
        let (own, upstream, paused) = {
            let st = self.inner.state.lock();
            (st.position, st.upstream.clone(), st.replay_paused)
        };
        match upstream {
            Some(primary) if !paused && hops > 0 && !Arc::ptr_eq(&primary.inner, &self.inner) => {
                primary.position_within(hops - 1).max(own)
            }
            _ => own,
        }
    }

    /// Set the replication role.
    pub fn set_role(&self, r: SimRole) {
        self.inner.state.lock().role = r;
    }

    /// The replication role. Default: [`SimRole::Primary`].
    pub fn role(&self) -> SimRole {
        self.inner.state.lock().role
    }

    /// Set the replication lag.
    pub fn set_lag(&self, lag: Duration) {
        self.inner.state.lock().lag = lag;
    }

    /// The replication lag. Default: zero.
    pub fn lag(&self) -> Duration {
        self.inner.state.lock().lag
    }

    /// Connections alive on the server: one more per successful connect, one less when a
    /// [`SimConnection`] is dropped or killed (once, whichever comes first).
    pub fn open_connections(&self) -> usize {
        self.inner.sync_outages();
        self.inner.open.load(RELAXED)
    }

    /// Successful connects.
    pub fn connects(&self) -> u64 {
        self.inner.connects.load(RELAXED)
    }

    /// Connect calls, successful or not (including panicking and stalled ones).
    pub fn connect_attempts(&self) -> u64 {
        self.inner.connect_attempts.load(RELAXED)
    }

    /// Connect futures currently running (a dropped future stops counting).
    pub fn in_flight_connects(&self) -> usize {
        self.inner.in_flight.load(RELAXED)
    }

    /// The most connect futures ever running at once.
    pub fn peak_in_flight_connects(&self) -> usize {
        self.inner.peak_in_flight.load(RELAXED)
    }

    /// Queries, probes and resets the server executed: those that reached it over a live
    /// connection, including those failing by [`query_failure_rate`](SimBehavior).
    pub fn queries(&self) -> u64 {
        self.inner.queries.load(RELAXED)
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
// Connections
// ---------------------------------------------------------------------------------------

/// The part of a connection the server can see: its id and kill flag.
struct ConnShared {
    id: u64,
    /// Killed, or dropped. Whoever sets it first takes the connection off `open`.
    dead: AtomicBool,
}

impl ConnShared {
    fn mark_dead(&self, open: &AtomicUsize) -> bool {
        if self.dead.swap(true, Ordering::AcqRel) {
            false
        } else {
            open.fetch_sub(1, RELAXED);
            true
        }
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }
}

/// Kills the connection if an operation is dropped before it completes.
struct CancelGuard<'a> {
    server: &'a ServerInner,
    conn: &'a ConnShared,
    armed: bool,
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.server.kill(self.conn);
        }
    }
}

/// A connection to a [`SimServer`].
///
/// Dropping it closes it. An operation future dropped while it waits (latency or a stall)
/// kills the connection, like a real driver whose command was cancelled mid-flight.
pub struct SimConnection {
    shared: Arc<ConnShared>,
    server: SimServer,
    queries: u64,
    in_transaction: bool,
    query_latency: Option<Duration>,
    query_failure_rate: Option<f64>,
}

impl SimConnection {
    /// Unique within the world.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The server this connection is open to.
    pub fn server(&self) -> &SimServer {
        &self.server
    }

    /// Run a statement. Returns how many statements this connection has run, this one
    /// included.
    ///
    /// Takes the query latency (no timer at all when it is zero). Fails with
    /// [`Closed`](BackendErrorKind::Closed) if the connection was killed or the server is
    /// down (the connection is then killed), with [`Query`](BackendErrorKind::Query) by
    /// the query failure rate. `BEGIN` / `START TRANSACTION` open a transaction, `COMMIT`,
    /// `ROLLBACK`, `END` and `ABORT` close it (case-insensitive).
    pub async fn query(&mut self, sql: &str) -> Result<u64, BackendError> {
        self.execute(sql).await
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Whether the connection was killed (by the server, an outage, or a cancelled
    /// operation).
    pub fn is_killed(&self) -> bool {
        self.server.inner.sync_outages();
        self.shared.is_dead()
    }

    fn ensure_alive(&self) -> Result<(), BackendError> {
        let server = &*self.server.inner;
        let in_outage = server.sync_outages();
        if self.shared.is_dead() {
            return Err(BackendError::new(
                BackendErrorKind::Closed,
                "connection closed by the server",
            ));
        }
        if in_outage || !server.up.load(Ordering::Acquire) {
            server.kill(&self.shared);
            return Err(BackendError::new(
                BackendErrorKind::Closed,
                "connection closed: the server is down",
            ));
        }
        Ok(())
    }

    /// Never completes; dropping it kills the connection.
    async fn stall(&self) {
        let _guard = CancelGuard {
            server: &self.server.inner,
            conn: &self.shared,
            armed: true,
        };
        std::future::pending::<()>().await;
    }

    async fn execute(&mut self, sql: &str) -> Result<u64, BackendError> {
        self.ensure_alive()?;
        let server = &*self.server.inner;
        let latency = self
            .query_latency
            .unwrap_or_else(|| Duration::from_nanos(server.query_latency_ns.load(RELAXED)));
        if !latency.is_zero() {
            let mut guard = CancelGuard {
                server,
                conn: &self.shared,
                armed: true,
            };
            tokio::time::sleep(latency).await;
            guard.armed = false;
            drop(guard);
            self.ensure_alive()?;
        }
        server.queries.fetch_add(1, RELAXED);
        self.queries += 1;
        let rate = self
            .query_failure_rate
            .unwrap_or_else(|| f64::from_bits(server.query_failure_bits.load(RELAXED)));
        if roll(rate, || server.state.lock().rng.random::<f64>()) {
            return Err(BackendError::new(
                BackendErrorKind::Query,
                "simulated query failure",
            ));
        }
        if is_write(sql) {
            let mut st = server.state.lock();
            if st.role == SimRole::Replica {
                return Err(BackendError::new(
                    BackendErrorKind::Query,
                    "cannot execute a write on a read-only replica",
                ));
            }
            st.position += 1;
        }
        self.track_transaction(sql);
        Ok(self.queries)
    }

    fn track_transaction(&mut self, sql: &str) {
        let sql = sql.trim_start();
        if keyword(sql, "BEGIN").is_some()
            || keyword(sql, "START")
                .and_then(|rest| keyword(rest.trim_start(), "TRANSACTION"))
                .is_some()
        {
            self.in_transaction = true;
        } else if keyword(sql, "COMMIT").is_some()
            || keyword(sql, "END").is_some()
            || keyword(sql, "ABORT").is_some()
        {
            self.in_transaction = false;
        } else if let Some(rest) = keyword(sql, "ROLLBACK") {
            // `ROLLBACK TO [SAVEPOINT] x` keeps the transaction open.
            if keyword(rest.trim_start(), "TO").is_none() {
                self.in_transaction = false;
            }
        }
    }
}

/// Whether `sql` changes data (INSERT, UPDATE, DELETE).
fn is_write(sql: &str) -> bool {
    let sql = sql.trim_start();
    ["INSERT", "UPDATE", "DELETE"]
        .iter()
        .any(|kw| keyword(sql, kw).is_some())
}

/// If `sql` starts with the keyword `kw` (case-insensitive, as a whole word), the rest.
fn keyword<'a>(sql: &'a str, kw: &str) -> Option<&'a str> {
    let n = kw.len();
    let head = sql.as_bytes().get(..n)?;
    if !head.eq_ignore_ascii_case(kw.as_bytes()) {
        return None;
    }
    match sql.as_bytes().get(n) {
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => None,
        _ => Some(&sql[n..]),
    }
}

impl Drop for SimConnection {
    fn drop(&mut self) {
        if !self.shared.is_dead() {
            self.server.inner.kill(&self.shared);
        }
    }
}

impl fmt::Debug for SimConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConnection")
            .field("id", &self.shared.id)
            .field("server", &self.server.inner.name)
            .field("killed", &self.shared.is_dead())
            .field("in_transaction", &self.in_transaction)
            .field("queries", &self.queries)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// Per-connection overrides from config options
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Overrides {
    connect_latency: Option<Duration>,
    query_latency: Option<Duration>,
    connect_failure_rate: Option<f64>,
    query_failure_rate: Option<f64>,
}

fn option_error(key: &str, reason: String) -> BackendError {
    BackendError::new(
        BackendErrorKind::Config,
        format!("invalid sim option `{key}`: {reason}"),
    )
}

fn parse_latency(key: &str, value: &str) -> Result<Duration, BackendError> {
    humantime_serde::re::humantime::parse_duration(value.trim())
        .map_err(|e| option_error(key, format!("`{value}` is not a duration ({e})")))
}

fn parse_rate(key: &str, value: &str) -> Result<f64, BackendError> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(option_error(
            key,
            format!("`{value}` is not a number between 0 and 1"),
        )),
    }
}

impl Overrides {
    fn parse(options: &BTreeMap<String, String>) -> Result<Self, BackendError> {
        let mut o = Self::default();
        for (key, value) in options {
            match key.as_str() {
                "connect_latency" => o.connect_latency = Some(parse_latency(key, value)?),
                "query_latency" => o.query_latency = Some(parse_latency(key, value)?),
                "connect_failure_rate" => o.connect_failure_rate = Some(parse_rate(key, value)?),
                "query_failure_rate" => o.query_failure_rate = Some(parse_rate(key, value)?),
                _ => {}
            }
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------

impl Backend for SimBackend {
    type Connection = SimConnection;

    /// Connect to `server(&config.primary_host())`.
    ///
    /// In order: count the attempt (and the connect as in flight until the future ends or
    /// is dropped); panic or stall if armed; parse the option overrides
    /// ([`Config`](BackendErrorKind::Config) error naming a bad one); wait the connect
    /// latency; fail if the server is down, if a failure is armed, if the password does
    /// not match ([`Auth`](BackendErrorKind::Auth)), or by the failure rate.
    async fn connect(&self, config: &ConnectionConfig) -> Result<SimConnection, BackendError> {
        let server = self.server(&config.primary_host());
        let inner = &*server.inner;
        inner.connect_attempts.fetch_add(1, RELAXED);
        let in_flight = InFlight::enter(inner);
        if take(&inner.panic_connects) {
            drop(in_flight);
            panic!("simulated panic in connect");
        }
        if take(&inner.stall_connects) {
            std::future::pending::<()>().await;
        }
        let overrides = if config.options.is_empty() {
            Overrides::default()
        } else {
            Overrides::parse(&config.options)?
        };
        let latency = overrides
            .connect_latency
            .unwrap_or_else(|| Duration::from_nanos(inner.connect_latency_ns.load(RELAXED)));
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let rate = overrides
            .connect_failure_rate
            .unwrap_or_else(|| f64::from_bits(inner.connect_failure_bits.load(RELAXED)));

        let shared = {
            let mut st = inner.state.lock();
            let in_outage = inner.outage_count.load(RELAXED) != 0
                && inner.sync_outages_locked(&mut st, Instant::now());
            if in_outage || !inner.up.load(Ordering::Acquire) {
                return Err(BackendError::new(
                    BackendErrorKind::Connect,
                    "connection refused",
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
            let shared = Arc::new(ConnShared {
                id,
                dead: AtomicBool::new(false),
            });
            st.conns.insert(id, shared.clone());
            inner.open.fetch_add(1, RELAXED);
            inner.connects.fetch_add(1, RELAXED);
            shared
        };
        drop(in_flight);
        Ok(SimConnection {
            shared,
            server,
            queries: 0,
            in_transaction: false,
            query_latency: overrides.query_latency,
            query_failure_rate: overrides.query_failure_rate,
        })
    }

    /// Panic or stall if armed, then like `conn.query("SELECT 1")`.
    async fn probe(&self, conn: &mut SimConnection) -> Result<(), BackendError> {
        if take(&conn.server.inner.panic_probes) {
            panic!("simulated panic in probe");
        }
        if take(&conn.server.inner.stall_probes) {
            conn.stall().await;
        }
        conn.execute("SELECT 1").await.map(drop)
    }

    /// Whether a transaction is open.
    fn needs_reset(&self, conn: &SimConnection) -> bool {
        conn.in_transaction()
    }

    /// Panic or stall if armed, then like `conn.query("ROLLBACK")`.
    async fn reset(&self, conn: &mut SimConnection) -> Result<(), BackendError> {
        if take(&conn.server.inner.panic_resets) {
            panic!("simulated panic in reset");
        }
        if take(&conn.server.inner.stall_resets) {
            conn.stall().await;
        }
        conn.execute("ROLLBACK").await.map(drop)
    }

    /// Whether the connection was killed.
    fn is_broken(&self, conn: &mut SimConnection) -> bool {
        conn.is_killed()
    }

    /// Role, lag and position, after a round trip like `SELECT 1`. The lag of a replica
    /// whose replay is paused grows with the writes it has not replayed (1 ms each, on
    /// top of [`SimServer::lag`]).
    async fn status(&self, conn: &mut SimConnection) -> Result<Option<MemberStatus>, BackendError> {
        conn.execute("SELECT 1").await?;
        let server = conn.server();
        let position = server.position();
        let behind = {
            let st = server.inner.state.lock();
            st.upstream.clone()
        }
        .map_or(0, |p| p.position().saturating_sub(position));
        Ok(Some(MemberStatus {
            role: match server.role() {
                SimRole::Primary => Role::Primary,
                SimRole::Replica => Role::Replica,
            },
            lag: Some(server.lag() + Duration::from_millis(behind)),
            position: Some(position),
        }))
    }

    /// The server's position after a round trip.
    async fn write_position(&self, conn: &mut SimConnection) -> Result<Option<u64>, BackendError> {
        conn.execute("SELECT 1").await?;
        Ok(Some(conn.server().position()))
    }
}

#[cfg(test)]
mod tests;
