//! Acquire: the entry points and the usual case. A free slot and an idle connection that
//! needs no probe are handed out without awaiting anything; with every slot taken the
//! acquire queues for one (FIFO) and then takes an idle connection the same way. Anything
//! else (a probe, a connect, a breaker, hooks, a pause, a span at TRACE) goes to the slow
//! path in `checkout.rs`. Runs in the caller's task; every await point is cancellation safe
//! (the slot and the connection are held in drop guards).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::TryAcquireError;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::conn::Conn;
use super::guard::PooledConnection;
use super::shared::{PoolShared, Slot};
use crate::backends::Backend;
use crate::error::Error;
use crate::limits::deadline as far_at;

/// Where an acquire's first step ([`PoolShared::acquire_now`]) left it.
pub(crate) enum Now<'a, B: Backend> {
    /// Served, or refused, without waiting for anything.
    Done(Result<PooledConnection<B>, Error>),
    /// Not done: [`PoolShared::acquire_then`] goes on from here.
    Then(Then<'a, B>),
}

/// What is left of an acquire after its first step.
pub(crate) enum Then<'a, B: Backend> {
    /// On to the slow path, with the slot it holds already, if any.
    Slow(Option<Slot<'a, B>>),
    /// Every slot taken: queue for one (the acquire began at this time on the pool's
    /// clock).
    Queue(u64),
}

impl<B: Backend> PoolShared<B> {
    /// Check out a connection within the pool's acquire timeout.
    pub(crate) fn acquire(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<PooledConnection<B>, Error>> + '_ {
        self.acquire_inner(self.config.acquire_timeout, true)
    }

    /// Check out a connection within `budget`.
    pub(crate) fn acquire_within(
        self: &Arc<Self>,
        budget: Duration,
    ) -> impl Future<Output = Result<PooledConnection<B>, Error>> + '_ {
        self.acquire_inner(budget, true)
    }

    /// Like [`acquire_within`](Self::acquire_within), but a failed connect attempt is
    /// answered at once instead of retried with backoff, so the caller can try another
    /// endpoint (replica-set reads, topology probes).
    pub(crate) fn acquire_no_retry(
        self: &Arc<Self>,
        budget: Duration,
    ) -> impl Future<Output = Result<PooledConnection<B>, Error>> + '_ {
        self.acquire_inner(budget, false)
    }

    async fn acquire_inner(
        self: &Arc<Self>,
        budget: Duration,
        retry_connect: bool,
    ) -> Result<PooledConnection<B>, Error> {
        let start = Instant::now();
        match self.acquire_now(start) {
            Now::Done(done) => done,
            Now::Then(rest) => self.acquire_then(start, budget, retry_connect, rest).await,
        }
    }

    /// An acquire's first step, begun at `start`, which awaits nothing: the usual case (a
    /// free slot and an idle connection that needs no probe) served, or an error that
    /// needs no wait; otherwise what [`acquire_then`](Self::acquire_then) goes on from.
    /// A replica-set read takes this step before it builds an acquire future at all.
    #[inline]
    pub(crate) fn acquire_now(self: &Arc<Self>, start: Instant) -> Now<'_, B> {
        if let Err(e) = self.check_open() {
            return Now::Done(Err(e));
        }
        // Hooks and pause cost the usual case, when neither is set, two relaxed-or-acquire
        // loads (the pause flag and its queue count) and a null check of the
        // `before_acquire` pointer, all branches predicted not taken.
        if self.health.tripped() || self.gated() {
            return Now::Then(Then::Slow(None));
        }
        let start_ns = self.hot.nanos(start);
        self.hot.touch(start_ns);
        match self.try_slot() {
            // A free slot: nothing was waited for, so the wait ends where it started (no
            // second clock read).
            Ok(slot) => match self.serve_idle(slot, start, start_ns, start_ns) {
                Ok(conn) => {
                    if tracing::level_enabled!(tracing::Level::TRACE) {
                        // The acquire's span, only when TRACE is on: nothing was waited
                        // for, probed or connected.
                        let _span = tracing::trace_span!(
                            "poolwarden.acquire",
                            pool = %self.key,
                            pool_name = self.observe.label(),
                            wait_us = 0u64,
                        );
                    }
                    Now::Done(Ok(conn))
                }
                Err(slot) => Now::Then(Then::Slow(Some(slot))),
            },
            Err(TryAcquireError::Closed) => Now::Done(Err(self.closed_error())),
            // At TRACE the slow path runs instead, in its span.
            Err(TryAcquireError::NoPermits) if !tracing::level_enabled!(tracing::Level::TRACE) => {
                Now::Then(Then::Queue(start_ns))
            }
            Err(TryAcquireError::NoPermits) => Now::Then(Then::Slow(None)),
        }
    }

    /// The rest of an acquire begun at `start` whose first step left `rest`, within
    /// `budget`.
    pub(crate) async fn acquire_then<'a>(
        self: &'a Arc<Self>,
        start: Instant,
        budget: Duration,
        retry_connect: bool,
        rest: Then<'a, B>,
    ) -> Result<PooledConnection<B>, Error> {
        let slot = match rest {
            Then::Slow(slot) => slot,
            // Every slot taken: queue for one, and what follows is the usual case again.
            // The wait is not boxed (the slow path is, ten times its size): under
            // callgrind the box cost a queued acquire 321 instructions of 3,873, its
            // absence the first step 12 of 735.
            Then::Queue(start_ns) => {
                let slot = self.wait_for_slot(start, far_at(start, budget)).await?;
                // Paused while queued: the slot goes back and the acquire queues at the
                // gate (slow path). The pool may have failed or closed meanwhile.
                if self.pause.is_paused() {
                    drop(slot);
                    None
                } else {
                    self.check_open()?;
                    let now = Instant::now();
                    match self.serve_idle(slot, now, start_ns, self.hot.nanos(now)) {
                        Ok(conn) => return Ok(conn),
                        Err(slot) => Some(slot),
                    }
                }
            }
        };
        // The slow path's span, at TRACE. When that level is off (the usual case) no span
        // is built and the future is not instrumented: the macro alone would still build a
        // disabled span and, with `tracing`'s `log` feature on (actix-web turns it on),
        // record its fields for the `log` fallback — measured at ~135 instructions per
        // acquire under callgrind; the `Instrumented` wrapper ~200 more per queued acquire.
        if tracing::level_enabled!(tracing::Level::TRACE) {
            let span = tracing::trace_span!(
                "poolwarden.acquire",
                pool = %self.key,
                pool_name = self.observe.label(),
                wait_us = Empty,
                probe_us = Empty,
                connect_us = Empty,
            );
            Box::pin(
                self.acquire_slow(start, budget, retry_connect, slot)
                    .instrument(span),
            )
            .await
        } else {
            Box::pin(self.acquire_slow(start, budget, retry_connect, slot)).await
        }
    }

    /// With a slot held: hand out the most recently returned idle connection if it needs
    /// no probe (`now`, `now_ns`: the time the wait ended; `start_ns`: when the acquire
    /// began, both on the pool's clock); otherwise the slot back, for the slow path.
    #[inline]
    fn serve_idle<'a>(
        self: &'a Arc<Self>,
        slot: Slot<'a, B>,
        now: Instant,
        start_ns: u64,
        now_ns: u64,
    ) -> Result<PooledConnection<B>, Slot<'a, B>> {
        match self.pop_reusable(now) {
            Some(conn) if !self.due_for_probe(&conn, now_ns) => {
                let waited = Duration::from_nanos(now_ns.saturating_sub(start_ns));
                Ok(self.hand_out(slot, conn, waited, now_ns))
            }
            Some(conn) => {
                self.file_idle(conn);
                Err(slot)
            }
            None => Err(slot),
        }
    }

    /// A checked-out connection, from its slot; `now` on the pool's clock.
    #[inline]
    pub(super) fn hand_out(
        self: &Arc<Self>,
        slot: Slot<'_, B>,
        mut conn: Conn<B::Connection>,
        waited: Duration,
        now: u64,
    ) -> PooledConnection<B> {
        conn.checkout = self.leaks.checkout();
        slot.disarm();
        self.hot.checked_out();
        // `now`: where the wait ended and the use starts.
        self.observe.waited(waited);
        PooledConnection::new(Arc::clone(self), conn, now)
    }
}

/// The acquire's span, when one is recorded: [`Span::current`] inside the slow path.
#[inline]
pub(super) fn span_record(field: &str, since: Instant) {
    if tracing::level_enabled!(tracing::Level::TRACE) {
        let us = since.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        Span::current().record(field, us);
    }
}
