//! A live page for operators (feature `dashboard`): supervisor totals and health, every
//! pool's utilization, waiters, error and timeout rates and breaker state with its
//! transitions, every replica set's members (role, health, lag, share of reads) and its
//! role changes as a timeline. One HTML page with its own script and canvas charts: no
//! CDN, nothing fetched from anywhere but the server that served it.
//!
//! # Mounting it
//!
//! In an actix-web application, one line (the page at `/poolwarden/`, its stream at
//! `/poolwarden/events`):
//!
//! ```no_run
//! # use poolwarden::backends::sim::SimBackend;
//! # use poolwarden::{dashboard, SupervisorConfig, SupervisorHandle};
//! # use actix_web::{App, HttpServer};
//! # async fn run() -> std::io::Result<()> {
//! let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default()).unwrap();
//! HttpServer::new(move || App::new().service(dashboard::scope(sup.clone())))
//!     .bind("127.0.0.1:8080")?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! [`scope_with`] mounts it at a path of your choosing (`"/ops/db"`: the page at
//! `/ops/db/`) with a [`DashboardConfig`] (a bearer token, the update interval, the
//! buffers). In a tokio worker with no web server of its own, [`serve`] / [`serve_with`]
//! run one on a thread of their own (`127.0.0.1:0` picks a free port;
//! [`DashboardServer::url`] says where):
//!
//! ```no_run
//! # use poolwarden::backends::sim::SimBackend;
//! # use poolwarden::{dashboard, EmbeddedSupervisor, Secret, SupervisorConfig};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sup = EmbeddedSupervisor::spawn(SimBackend::default(), SupervisorConfig::default())?;
//! let config = dashboard::DashboardConfig::default().with_token(Secret::new("s3cret-token"));
//! let server = dashboard::serve_with(sup.handle().clone(), "127.0.0.1:0", config)?;
//! println!("dashboard: {}?token=…", server.url());
//! # Ok(()) }
//! ```
//!
//! # The token
//!
//! With [`DashboardConfig::token`] set, every request under the dashboard's path (the
//! page, the stream, anything else) must present it, as `Authorization: Bearer <token>`
//! or as a `token` query parameter; a missing or wrong one gets `401` with an empty body
//! and nothing else. Tokens are compared as SHA-256 digests in constant time. The page is
//! opened once as `…/poolwarden/?token=<token>`: its script takes the token from the
//! address, removes it from the address bar and history (`history.replaceState`), keeps it
//! in memory only (no cookie, no storage) and sends it as an `Authorization` header on the
//! stream (read with `fetch`, not `EventSource`, which cannot send headers). Serve over
//! TLS (a reverse proxy) anywhere but loopback: the token travels in clear otherwise.
//! Without a token anybody who can reach the address can read the page: [`serve`] binds
//! where it is told, so keep it on `127.0.0.1` (a warning is logged for any other address
//! without a token).
//!
//! # What is sent, and to whom
//!
//! The stream is `text/event-stream` (server-sent events): a `snapshot` event every
//! [`DashboardConfig::interval`] (1 s), a `breaker` or `role` event as soon as a transition
//! happens. A snapshot holds the supervisor's totals ([`SupervisorStats`](crate::SupervisorStats)
//! without the per-pool list), the last [`HealthReport`](crate::HealthReport) (taken every
//! [`DashboardConfig::health_every`], only while someone watches), every pool with its
//! [`PoolStats`](crate::PoolStats) serialized whole (so new fields reach the page without
//! a change here; the page draws the ones it knows, e.g. wait percentiles when present),
//! every replica set's [`MemberInfo`](crate::MemberInfo)s, the recent breaker transitions
//! and role changes (bounded: [`DashboardConfig::history`]) and the feed's own figures.
//! Pools are named by their key, their registered names and their redacted target (the
//! password replaced by `***`): no password and no credential appears on the page or in
//! the stream.
//!
//! One collector per scope (per actix-web worker that served the page) asks the supervisor
//! for its figures and hands each browser the result through its own bounded channel
//! ([`DashboardConfig::client_buffer`] messages). A browser that reads too slowly, or has
//! gone, never slows the collector or makes it hold more: an update that does not fit is
//! dropped and counted (`feed.dropped` in each snapshot, [`DashboardServer::dropped_updates`]),
//! a closed channel is forgotten, and at most [`DashboardConfig::max_clients`] streams run
//! at once (`503` beyond). The collector starts with the first request and asks the
//! supervisor nothing while nobody watches.

mod assets;
mod auth;
mod feed;
mod scope;
mod serve;
mod snapshot;

use std::time::Duration;

use crate::secret::Secret;

pub use scope::{scope, scope_with};
pub use serve::{serve, serve_with, DashboardServer};

/// How a dashboard runs. `DashboardConfig::default()`: no token, a snapshot every second,
/// 8 messages buffered per browser, 16 browsers, 200 events of each kind kept, health
/// every 5 s.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// The bearer token every request must present (see the [module docs](self)); `None`:
    /// no check. An empty token admits nobody.
    pub token: Option<Secret>,
    /// How often a snapshot is taken and sent (at least 100 ms).
    pub interval: Duration,
    /// Messages buffered for one browser before updates to it are dropped (at least 1).
    pub client_buffer: usize,
    /// Streams open at once; one more gets `503`.
    pub max_clients: usize,
    /// Breaker transitions, and role changes, kept for the page (each).
    pub history: usize,
    /// How often every pool is probed for the health line (a
    /// [`HealthCheck`](crate::messages::HealthCheck): one probe per pool), while someone
    /// watches.
    pub health_every: Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            token: None,
            interval: Duration::from_secs(1),
            client_buffer: 8,
            max_clients: 16,
            history: 200,
            health_every: Duration::from_secs(5),
        }
    }
}

impl DashboardConfig {
    /// The same config, requiring `token`.
    pub fn with_token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// The values as used: the interval at least 100 ms, buffers at least 1.
    pub(crate) fn normalized(mut self) -> Self {
        self.interval = self.interval.max(Duration::from_millis(100));
        self.health_every = self.health_every.max(self.interval);
        self.client_buffer = self.client_buffer.max(1);
        self.history = self.history.max(1);
        self
    }
}
