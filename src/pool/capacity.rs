//! What the server accepted: after a "too many connections" refusal the pool serves with
//! the connections it has, no connect is tried past that many, and one try to grow is let
//! through at a time with backoff (the callers it leaves waiting are woken when it ends, or
//! when a connection closes and leaves room).
//! A capacity refusal is not an outage: it never touches the breaker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::wake::until_woken;
use crate::key::PoolKey;

const NONE: usize = usize::MAX;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(crate) struct Capacity {
    key: PoolKey,
    /// Connections the server accepted; `NONE` while it has not refused any.
    limit: AtomicUsize,
    /// When the next try past the limit may go, and the backoff after it.
    next: Mutex<(Instant, Duration)>,
    /// A try to grow is under way (its [`GrowTry`] is alive).
    growing: AtomicBool,
    /// Woken when a try to grow ends, however it ended, and when a connection closes
    /// while the server is full (room for one more). Shared with the closes that end
    /// later ([`RoomWaker`]).
    changed: Arc<Notify>,
}

/// Wakes the callers waiting for room on a full server when a connection closes later
/// than its pool's call to close it (after a `before_close` hook, in a task of its own).
pub(super) struct RoomWaker(Arc<Notify>);

impl RoomWaker {
    /// The connection closed: callers waiting on a full server look again.
    pub(super) fn closed(&self) {
        self.0.notify_waiters();
    }
}

/// May one more connection be opened?
pub(super) enum Room<'a> {
    /// Yes.
    Free,
    /// Yes, as the one try past what the server accepted; report how it went
    /// ([`opened`](Capacity::opened), [`refused`](Capacity::refused)) and drop the try.
    Grow(GrowTry<'a>),
    /// No: the server is full; wait for a connection to come back, or until `next_try`
    /// (`None`: another caller's try to grow is under way: until it ends, see
    /// [`grow_ends`](Capacity::grow_ends)).
    Full { next_try: Option<Instant> },
}

/// The one try to grow under way; dropped (answered, failed otherwise, or cancelled), it
/// lets the next try go and wakes the callers waiting for it.
pub(super) struct GrowTry<'a>(&'a Capacity);

impl Drop for GrowTry<'_> {
    fn drop(&mut self) {
        self.0.growing.store(false, Ordering::Release);
        self.0.changed.notify_waiters();
    }
}

impl Capacity {
    pub(super) fn new(key: PoolKey) -> Self {
        Self {
            key,
            limit: AtomicUsize::new(NONE),
            next: Mutex::new((Instant::now(), FIRST_BACKOFF)),
            growing: AtomicBool::new(false),
            changed: Arc::new(Notify::new()),
        }
    }

    /// The limit the server set, if it refused a connection.
    #[inline]
    pub(crate) fn limit(&self) -> Option<usize> {
        let l = self.limit.load(Ordering::Relaxed);
        (l != NONE).then_some(l)
    }

    /// With `open` connections open or opening: may one more be opened now?
    #[inline]
    pub(super) fn room(&self, open: usize, now: Instant) -> Room<'_> {
        match self.limit() {
            None => Room::Free,
            Some(limit) if open < limit => Room::Free,
            Some(_) => self.grow_room(now),
        }
    }

    #[cold]
    fn grow_room(&self, now: Instant) -> Room<'_> {
        let next_try = self.next.lock().0;
        if now < next_try {
            return Room::Full {
                next_try: Some(next_try),
            };
        }
        match self
            .growing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => Room::Grow(GrowTry(self)),
            // Its time has come and another caller is trying: waiting until `next_try`
            // (past) would be no wait at all.
            Err(_) => Room::Full { next_try: None },
        }
    }

    /// Until the try to grow under way (if any) ends. Cancel safe.
    pub(super) async fn grow_ends(&self) {
        until_woken(&self.changed, || self.growing.load(Ordering::Acquire)).await;
    }

    /// Until there is room under the limit (a connection closed), or a try to grow ended;
    /// `open`: connections open or opening now. Cancel safe.
    pub(super) async fn room_freed(&self, open: impl Fn() -> usize) {
        until_woken(&self.changed, || {
            self.limit().is_some_and(|limit| open() >= limit)
        })
        .await;
    }

    /// For a connection that closes later: what wakes the callers waiting for room then.
    pub(super) fn waker(&self) -> RoomWaker {
        RoomWaker(Arc::clone(&self.changed))
    }

    /// A connection closed: callers waiting on a full server look again.
    #[inline]
    pub(super) fn closed(&self) {
        if self.limit().is_some() {
            self.changed.notify_waiters();
        }
    }

    /// The server refused a connection for capacity with `open` others open: serve with
    /// those, try again past them after a growing backoff.
    pub(super) fn refused(&self, open: usize, now: Instant) {
        let before = self.limit.swap(open, Ordering::AcqRel);
        let mut next = self.next.lock();
        let backoff = if before == NONE {
            tracing::warn!(pool = %self.key, accepted = open, "the server accepts no more connections; serving with those it accepted");
            FIRST_BACKOFF
        } else {
            next.1
        };
        *next = (now + backoff, (backoff * 2).min(MAX_BACKOFF));
    }

    /// A connection opened; `open` are open now. Past the limit it raises it, and at
    /// `max_size` the limit is gone.
    pub(super) fn opened(&self, open: usize, max_size: usize) {
        let Some(limit) = self.limit() else { return };
        if open >= max_size {
            self.limit.store(NONE, Ordering::Release);
            tracing::info!(pool = %self.key, "the server accepts the pool's full size again");
        } else if open > limit {
            self.limit.store(open, Ordering::Release);
            *self.next.lock() = (Instant::now(), FIRST_BACKOFF);
        }
    }
}
