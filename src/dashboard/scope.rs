//! The actix-web side: a [`Scope`] with the page (`/`), the stream (`/events`) and a `401`
//! for anything else without the token.

use std::convert::Infallible;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, Scope};
use parking_lot::Mutex;

use super::assets::page;
use super::auth::{unauthorized, Token};
use super::feed::{Feed, FeedCounters, Join};
use super::DashboardConfig;
use crate::backends::Backend;
use crate::supervisor::handle::SupervisorHandle;

/// What every request of one scope shares.
pub(crate) struct Shared<B: Backend> {
    sup: SupervisorHandle<B>,
    config: DashboardConfig,
    token: Option<Token>,
    feed: Mutex<Option<Addr<Feed<B>>>>,
    pub(crate) counters: Arc<FeedCounters>,
}

impl<B: Backend> Shared<B> {
    pub(crate) fn new(sup: SupervisorHandle<B>, config: DashboardConfig) -> Self {
        let config = config.normalized();
        Self {
            sup,
            token: config.token.as_ref().map(Token::new),
            config,
            feed: Mutex::new(None),
            counters: Arc::default(),
        }
    }

    fn authorized(&self, request: &HttpRequest) -> bool {
        self.token.as_ref().is_none_or(|t| t.admits(request))
    }

    /// The collector, started on first use on the current arbiter (again if it stopped).
    fn feed(&self) -> Addr<Feed<B>> {
        let mut feed = self.feed.lock();
        match feed.as_ref() {
            Some(addr) if addr.connected() => addr.clone(),
            _ => {
                let addr = Feed::new(
                    self.sup.clone(),
                    self.config.clone(),
                    Arc::clone(&self.counters),
                )
                .start();
                *feed = Some(addr.clone());
                addr
            }
        }
    }
}

/// The dashboard as an actix-web [`Scope`] at `/poolwarden`, without a token:
/// `App::new().service(dashboard::scope(sup.clone()))`. The page is `/poolwarden/` (and
/// `/poolwarden`), the stream `/poolwarden/events`.
///
/// Call it inside `HttpServer::new`'s closure: each worker gets its scope and, once a
/// browser asks, its own collector.
pub fn scope<B: Backend>(supervisor: SupervisorHandle<B>) -> Scope {
    scope_with(supervisor, "/poolwarden", DashboardConfig::default())
}

/// The dashboard at `path` (`"/ops/db"`: the page at `/ops/db/`, the stream at
/// `/ops/db/events`; `""`: at the root) with `config` (a token, the interval, the buffers).
pub fn scope_with<B: Backend>(
    supervisor: SupervisorHandle<B>,
    path: &str,
    config: DashboardConfig,
) -> Scope {
    build(path, Arc::new(Shared::new(supervisor, config)))
}

pub(crate) fn build<B: Backend>(path: &str, shared: Arc<Shared<B>>) -> Scope {
    web::scope(path.trim_end_matches('/'))
        .app_data(web::Data::from(shared))
        .route("", web::get().to(page_handler::<B>))
        .route("/", web::get().to(page_handler::<B>))
        .route("/events", web::get().to(events_handler::<B>))
        .default_service(web::to(other_handler::<B>))
}

async fn page_handler<B: Backend>(shared: web::Data<Shared<B>>, req: HttpRequest) -> HttpResponse {
    if !shared.authorized(&req) {
        return unauthorized();
    }
    let page = page();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, page.csp.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(page.html.clone())
}

async fn events_handler<B: Backend>(
    shared: web::Data<Shared<B>>,
    req: HttpRequest,
) -> HttpResponse {
    if !shared.authorized(&req) {
        return unauthorized();
    }
    match shared.feed().send(Join).await {
        Ok(Some(rx)) => {
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
            });
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header(("X-Accel-Buffering", "no"))
                .streaming(stream)
        }
        Ok(None) => HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "5"))
            .body("too many dashboard streams open"),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

async fn other_handler<B: Backend>(shared: web::Data<Shared<B>>, req: HttpRequest) -> HttpResponse {
    if !shared.authorized(&req) {
        return unauthorized();
    }
    HttpResponse::NotFound().finish()
}
