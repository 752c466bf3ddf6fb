//! The standalone server: actix-web on a thread of its own (its own actix System), for
//! programs that have no web server, tokio workers included.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};

use super::feed::FeedCounters;
use super::scope::{build, Shared};
use super::DashboardConfig;
use crate::backends::Backend;
use crate::supervisor::handle::SupervisorHandle;

/// A running dashboard server ([`serve`], [`serve_with`]). Dropping it stops the server
/// (without waiting); [`stop`](Self::stop) waits.
pub struct DashboardServer {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
    counters: Arc<FeedCounters>,
}

impl std::fmt::Debug for DashboardServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DashboardServer {
    /// The address it listens on (the port chosen for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/`: the page. With a token, open `<url>?token=<token>`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Updates dropped so far because a browser read too slowly (all browsers together).
    pub fn dropped_updates(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Event streams open now.
    pub fn clients(&self) -> usize {
        self.counters.clients.load(Ordering::Relaxed)
    }

    /// Stop the server, closing open streams, and wait for its thread to end.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DashboardServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // The command is sent at once; the returned future only waits for it.
            drop(self.handle.stop(false));
        }
    }
}

/// Serve the dashboard at `addr` (`"127.0.0.1:0"` for a free port) without a token. See
/// [`serve_with`].
pub fn serve<B: Backend>(
    supervisor: SupervisorHandle<B>,
    addr: impl ToSocketAddrs,
) -> io::Result<DashboardServer> {
    serve_with(supervisor, addr, DashboardConfig::default())
}

/// Serve the dashboard at `addr` with `config`: the page at `/`, the stream at `/events`,
/// on a thread of its own running one actix-web worker. Returns once the socket is bound
/// (an error if it cannot be, or if the token is empty). Callable from any thread, inside
/// a tokio runtime or not; it blocks for as long as binding takes.
///
/// Binding anything but a loopback address without a token logs a warning: the page then
/// shows your pools to whoever reaches the address.
pub fn serve_with<B: Backend>(
    supervisor: SupervisorHandle<B>,
    addr: impl ToSocketAddrs,
    config: DashboardConfig,
) -> io::Result<DashboardServer> {
    if config.token.as_ref().is_some_and(|t| t.expose().is_empty()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "dashboard token must not be empty",
        ));
    }
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if config.token.is_none() && addrs.iter().any(|a| !a.ip().is_loopback()) {
        tracing::warn!(?addrs, "dashboard served beyond loopback without a token");
    }
    let shared = Arc::new(Shared::new(supervisor, config));
    let counters = Arc::clone(&shared.counters);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("poolwarden-dashboard".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let bound =
                    HttpServer::new(move || App::new().service(build("", Arc::clone(&shared))))
                        .workers(1)
                        .disable_signals()
                        .shutdown_timeout(1)
                        .bind(&addrs[..]);
                let server = match bound {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                let local = server.addrs()[0];
                let server = server.run();
                let _ = ready_tx.send(Ok((local, server.handle())));
                server.await
            })
        })?;
    match ready_rx.recv() {
        Ok(Ok((addr, handle))) => Ok(DashboardServer {
            addr,
            handle,
            thread: Some(thread),
            counters,
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(io::Error::other(
            "dashboard server thread ended before binding",
        )),
    }
}
