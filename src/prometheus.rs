//! Prometheus text format over actix-web (feature `prometheus`): a `GET /metrics`
//! resource that renders a [`PrometheusHandle`], mounted in one line. poolwarden never
//! installs the recorder: the application builds it (so it may set buckets, global
//! labels, upkeep) and hands the resource its handle.
//!
//! Install the recorder **before** starting the supervisor: each pool registers its
//! series with the recorder installed when its actor starts.
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//! use poolwarden::prometheus::PrometheusBuilder;
//!
//! # async fn run() -> std::io::Result<()> {
//! let handle = PrometheusBuilder::new()
//!     .install_recorder()
//!     .expect("no other recorder installed");
//! // … then start the supervisor and the pools.
//! HttpServer::new(move || App::new().service(poolwarden::prometheus::handler(handle.clone())))
//!     .bind(("127.0.0.1", 9100))?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! Names render as `metrics-exporter-prometheus` renders them: dots become underscores,
//! and histograms (summaries unless buckets are set) get `_sum` and `_count`
//! (`db.client.connection.wait_time` → `db_client_connection_wait_time`); see
//! `docs/observability.md` for the table.

use actix_web::{web, HttpResponse, Resource};

pub use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: the text format rendered from `handle`. Mount it with
/// `App::new().service(poolwarden::prometheus::handler(handle))`.
pub fn handler(handle: PrometheusHandle) -> Resource {
    handler_at("/metrics", handle)
}

/// [`handler`] at another path.
pub fn handler_at(path: &str, handle: PrometheusHandle) -> Resource {
    web::resource(path).route(web::get().to(move || {
        let body = handle.render();
        async move { HttpResponse::Ok().content_type(CONTENT_TYPE).body(body) }
    }))
}
