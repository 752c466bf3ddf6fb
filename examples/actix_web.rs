//! An actix-web service with a read route and a write route on a PostgreSQL table,
//! through the supervisor. With `DATABASE_URL` unset it runs on the simulated backend
//! (and says so).
//!
//! ```text
//! cargo run --example actix_web                       # simulated backend, port 8080
//! DATABASE_URL=postgres://user:pw@localhost/db cargo run --example actix_web
//! curl -X POST localhost:8080/items -d 'hello'        # -> {"id":1}
//! curl localhost:8080/items/1                         # -> hello
//! cargo run --example actix_web -- --smoke            # start on a free port, one write, one read, exit
//! ```
//!
//! With the `dashboard` feature (on by default) the app mounts
//! `poolwarden::dashboard::scope(sup)`: one line, the live page at `/poolwarden/`.

mod common;

use std::collections::HashMap;
use std::error::Error;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use parking_lot::Mutex;
use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::backends::sim::{SimBackend, SimBehavior};
use poolwarden::{Backend, ConnectionConfig, PoolHandle, SupervisorConfig, SupervisorHandle};

type BoxError = Box<dyn Error + Send + Sync>;

/// What the routes need from a database.
trait Store: Clone + Send + 'static {
    async fn read(&self, id: i64) -> Result<Option<String>, BoxError>;
    async fn write(&self, body: String) -> Result<i64, BoxError>;
}

/// PostgreSQL: a real table.
#[derive(Clone)]
struct PgStore(PoolHandle<PostgresBackend>);

impl Store for PgStore {
    async fn read(&self, id: i64) -> Result<Option<String>, BoxError> {
        let conn = self.0.acquire().await?;
        let row = conn
            .query_opt("SELECT body FROM items WHERE id = $1", &[&id])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn write(&self, body: String) -> Result<i64, BoxError> {
        let conn = self.0.acquire().await?;
        let row = conn
            .query_one(
                "INSERT INTO items (body) VALUES ($1) RETURNING id",
                &[&body],
            )
            .await?;
        Ok(row.get::<_, i32>(0).into())
    }
}

/// The simulated backend has latency and faults but no storage: rows live in memory
/// beside it, and every route still checks a connection out and runs a statement.
#[derive(Clone)]
struct SimStore {
    pool: PoolHandle<SimBackend>,
    rows: Arc<Mutex<HashMap<i64, String>>>,
}

impl Store for SimStore {
    async fn read(&self, id: i64) -> Result<Option<String>, BoxError> {
        let mut conn = self.pool.acquire().await?;
        conn.query("SELECT body FROM items WHERE id = $1").await?;
        Ok(self.rows.lock().get(&id).cloned())
    }

    async fn write(&self, body: String) -> Result<i64, BoxError> {
        let mut conn = self.pool.acquire().await?;
        conn.query("INSERT INTO items (body) VALUES ($1)").await?;
        let mut rows = self.rows.lock();
        let id = rows.len() as i64 + 1;
        rows.insert(id, body);
        Ok(id)
    }
}

async fn read<S: Store>(store: web::Data<S>, id: web::Path<i64>) -> HttpResponse {
    match store.read(id.into_inner()).await {
        Ok(Some(body)) => HttpResponse::Ok().body(body),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(e) => HttpResponse::ServiceUnavailable().body(e.to_string()),
    }
}

async fn write<S: Store>(store: web::Data<S>, body: String) -> HttpResponse {
    match store.write(body).await {
        Ok(id) => HttpResponse::Created().body(format!("{{\"id\":{id}}}")),
        Err(e) => HttpResponse::ServiceUnavailable().body(e.to_string()),
    }
}

/// What `/metrics` renders from: the recorder's handle (feature `prometheus`), else nothing.
#[cfg(feature = "prometheus")]
type Metrics = poolwarden::prometheus::PrometheusHandle;
#[cfg(not(feature = "prometheus"))]
type Metrics = NoMetrics;

/// Without the `prometheus` feature: nothing to render.
#[cfg(not(feature = "prometheus"))]
#[derive(Clone)]
struct NoMetrics;

async fn serve<S: Store, B: Backend>(
    store: S,
    sup: SupervisorHandle<B>,
    prometheus: Metrics,
    smoke: bool,
) -> std::io::Result<()> {
    let port = if smoke { 0 } else { 8080 };
    let server = HttpServer::new(move || {
        let app = App::new()
            .app_data(web::Data::new(store.clone()))
            .route("/items/{id}", web::get().to(read::<S>))
            .route("/items", web::post().to(write::<S>));
        // The operators' page, mounted in one line (feature `dashboard`).
        #[cfg(feature = "dashboard")]
        let app = app.service(poolwarden::dashboard::scope(sup.clone()));
        #[cfg(not(feature = "dashboard"))]
        let _ = &sup;
        // `GET /metrics` in the Prometheus text format (feature `prometheus`).
        #[cfg(feature = "prometheus")]
        let app = app.service(poolwarden::prometheus::handler(prometheus.clone()));
        #[cfg(not(feature = "prometheus"))]
        let _ = &prometheus;
        app
    })
    .workers(2)
    .bind(("127.0.0.1", port))?;
    let addr = server.addrs()[0];
    println!("listening on http://{addr}");
    if cfg!(feature = "dashboard") {
        println!("dashboard: http://{addr}/poolwarden/");
    }
    let server = server.run();
    if !smoke {
        return server.await;
    }
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    let check = actix_web::rt::task::spawn_blocking(move || -> std::io::Result<()> {
        let created = http(addr, "POST /items", "hello from the smoke test")?;
        println!("POST /items -> {created}");
        let id: i64 = created
            .trim_start_matches("{\"id\":")
            .trim_end_matches('}')
            .parse()
            .map_err(|_| std::io::Error::other(format!("unexpected reply {created:?}")))?;
        let body = http(addr, &format!("GET /items/{id}"), "")?;
        println!("GET /items/{id} -> {body}");
        if body != "hello from the smoke test" {
            return Err(std::io::Error::other("read did not return the write"));
        }
        if cfg!(feature = "dashboard") {
            let page = http(addr, "GET /poolwarden/", "")?;
            if !page.contains("<title>poolwarden</title>") {
                return Err(std::io::Error::other("the dashboard page is missing"));
            }
            println!(
                "GET /poolwarden/ -> the dashboard page ({} bytes)",
                page.len()
            );
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?;
    handle.stop(true).await;
    let _ = running.await;
    check
}

/// A minimal HTTP/1.1 client for the smoke test: answers the body.
fn http(addr: std::net::SocketAddr, request_line: &str, body: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{request_line} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    if !head.starts_with("HTTP/1.1 2") {
        return Err(std::io::Error::other(format!("{head}\n{body}")));
    }
    Ok(body.to_string())
}

#[actix_web::main]
async fn main() -> Result<(), BoxError> {
    common::init_tracing();
    // Prometheus (feature `prometheus`): the application installs the recorder before the
    // supervisor starts, and mounts `/metrics` below.
    #[cfg(feature = "prometheus")]
    let prometheus = poolwarden::prometheus::PrometheusBuilder::new().install_recorder()?;
    #[cfg(not(feature = "prometheus"))]
    let prometheus = NoMetrics;
    let smoke = std::env::args().any(|a| a == "--smoke");
    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let config = ConnectionConfig::parse(&url)?;
            println!("using PostgreSQL at {config}");
            let sup = SupervisorHandle::start(PostgresBackend::new(), SupervisorConfig::default())?;
            let pool = sup.pool(config).await?;
            pool.acquire()
                .await?
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, body text NOT NULL)",
                )
                .await?;
            serve(PgStore(pool), sup.clone(), prometheus.clone(), smoke).await?;
            sup.shutdown(Duration::from_secs(5)).await?;
        }
        Err(_) => {
            println!("DATABASE_URL is not set: running on the simulated backend");
            let sim = SimBackend::new(1);
            sim.set_default_behavior(SimBehavior {
                connect_latency: Duration::from_millis(5),
                query_latency: Duration::from_millis(1),
                ..SimBehavior::default()
            });
            let sup = SupervisorHandle::start(sim, SupervisorConfig::default())?;
            let pool = sup.pool(ConnectionConfig::sim("items-db")).await?;
            let store = SimStore {
                pool,
                rows: Arc::default(),
            };
            serve(store, sup.clone(), prometheus.clone(), smoke).await?;
            sup.shutdown(Duration::from_secs(5)).await?;
        }
    }
    Ok(())
}
