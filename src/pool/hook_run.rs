//! Running the pool's [`Hooks`]: each run bounded by the hooks' timeout (and a caller's
//! deadline), panics caught, failures counted and logged. A hook's failure fails its
//! connection, never the pool: unlike a backend panic it restarts nothing, and it is
//! never reported to the breaker (it says nothing about the endpoint).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::{timeout_at, Instant};

use super::capacity::{Capacity, RoomWaker};
use super::conn::Conn;
use super::counters::Counters;
use super::hooks::{HookError, HookFuture, HookPoint, Hooks};
use super::shared::{panic_message, PoolShared};
use crate::backends::Backend;
use crate::error::{BackendError, BackendErrorKind, Error};
use crate::key::PoolKey;
use crate::limits::deadline as far_at;
use crate::observe::reason::CloseReason;

/// How a hook run failed.
#[derive(Debug)]
pub(super) enum HookFailure {
    /// It returned an error.
    Failed(String),
    /// It ran past the hooks' timeout.
    TimedOut(Duration),
    /// It panicked.
    Panicked(String),
    /// The caller's deadline came first: not the hook's failure, not counted.
    CutShort,
}

impl HookFailure {
    fn reason(&self) -> String {
        match self {
            HookFailure::Failed(e) => format!("failed: {e}"),
            HookFailure::TimedOut(t) => format!("timed out after {t:?}"),
            HookFailure::Panicked(m) => format!("panicked: {m}"),
            HookFailure::CutShort => "cut short by the acquire deadline".into(),
        }
    }
}

/// Run one hook future within `timeout` and `deadline`; count and log a failure.
async fn run<T>(
    key: PoolKey,
    counters: &Counters,
    point: HookPoint,
    timeout: Duration,
    deadline: Option<Instant>,
    hook: HookFuture<'_, T>,
) -> Result<T, HookFailure> {
    let own = far_at(Instant::now(), timeout);
    let limit = deadline.map_or(own, |d| d.min(own));
    let failure = match timeout_at(limit, AssertUnwindSafe(hook).catch_unwind()).await {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(payload)) => HookFailure::Panicked(panic_message(&*payload)),
        Err(_) if limit < own => return Err(HookFailure::CutShort),
        Err(_) => HookFailure::TimedOut(timeout),
    };
    counted(key, counters, point, failure)
}

/// A hook that answers `Result`: its error is a failure too.
async fn run_fallible<T>(
    key: PoolKey,
    counters: &Counters,
    point: HookPoint,
    timeout: Duration,
    deadline: Option<Instant>,
    hook: HookFuture<'_, Result<T, HookError>>,
) -> Result<T, HookFailure> {
    match run(key, counters, point, timeout, deadline, hook).await? {
        Ok(value) => Ok(value),
        Err(e) => counted(key, counters, point, HookFailure::Failed(e.to_string())),
    }
}

fn counted<T>(
    key: PoolKey,
    counters: &Counters,
    point: HookPoint,
    failure: HookFailure,
) -> Result<T, HookFailure> {
    let timed_out = matches!(failure, HookFailure::TimedOut(_));
    let panicked = matches!(failure, HookFailure::Panicked(_));
    counters.hook_failed(timed_out, panicked);
    let reason = failure.reason();
    if panicked {
        tracing::error!(pool = %key, hook = %point, %reason, "hook panicked; closing its connection");
    } else {
        tracing::warn!(pool = %key, hook = %point, %reason, "hook failed; closing its connection");
    }
    Err(failure)
}

/// Counts one connection closed when dropped, and wakes the callers waiting for room on
/// a full server: at the end of a `before_close` hook's task, or when that task is dropped
/// unfinished (its runtime ended), the connection with it.
struct CountClosed(Arc<Counters>, RoomWaker);

impl Drop for CountClosed {
    fn drop(&mut self) {
        self.0.closed();
        self.1.closed();
    }
}

/// Close `conn` once the `before_close` hook ran (bounded), then count it closed: in a
/// task when there is a runtime, else at once without the hook. However the task ends,
/// finished or dropped with its runtime, the connection is closed and counted.
pub(super) fn close_after_hook<C: Send + 'static>(
    key: PoolKey,
    counters: &Arc<Counters>,
    room: &Capacity,
    hooks: &Hooks<C>,
    mut conn: Conn<C>,
) -> Option<Conn<C>> {
    let Some(hook) = hooks.before_close.clone() else {
        return Some(conn);
    };
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return Some(conn);
    };
    let closed = CountClosed(Arc::clone(counters), room.waker());
    let timeout = hooks.timeout;
    rt.spawn(async move {
        let _ = run(
            key,
            &closed.0,
            HookPoint::BeforeClose,
            timeout,
            None,
            hook(&mut conn.raw),
        )
        .await;
        drop(conn);
        drop(closed);
    });
    None
}

impl<B: Backend> PoolShared<B> {
    /// The error an acquire gets for a hook's `failure` (a deadline that came first is a
    /// timeout of the acquire, in the phase given).
    pub(super) fn hook_error(&self, point: HookPoint, reason: impl Into<String>) -> Error {
        Error::Hook {
            key: self.key,
            hook: point,
            reason: reason.into(),
        }
    }

    /// A freshly opened connection, through the `after_connect` hook. On failure it is
    /// closed and the connect counts as failed (not against the endpoint). `Ok(Err)`:
    /// the caller's `deadline` came first; the connection was closed.
    pub(super) async fn after_connect(
        &self,
        conn: Conn<B::Connection>,
        deadline: Option<Instant>,
    ) -> Result<Result<Conn<B::Connection>, BackendError>, Error> {
        let Some(hook) = self.hooks.after_connect.as_ref() else {
            return Ok(Ok(conn));
        };
        let mut pending = self.pending(conn);
        let point = HookPoint::AfterConnect;
        let ran = run_fallible(
            self.key,
            &self.counters,
            point,
            self.hooks.timeout,
            deadline,
            hook(pending.raw()),
        )
        .await;
        match ran {
            Ok(()) => Ok(Ok(pending.keep())),
            Err(HookFailure::CutShort) => Ok(Err(BackendError::new(
                BackendErrorKind::Timeout,
                "the after_connect hook was cut short by the deadline",
            ))),
            Err(failure) => {
                drop(pending);
                self.counters.connect_failed();
                Err(self.hook_error(point, failure.reason()))
            }
        }
    }

    /// The `before_acquire` hook's verdict on `raw`, if the hook is set.
    pub(super) async fn before_acquire(
        &self,
        raw: &mut B::Connection,
        deadline: Instant,
    ) -> Option<Result<super::hooks::AcquireVerdict, HookFailure>> {
        let hook = self.hooks.before_acquire.as_ref()?;
        Some(
            run_fallible(
                self.key,
                &self.counters,
                HookPoint::BeforeAcquire,
                self.hooks.timeout,
                Some(deadline),
                hook(raw),
            )
            .await,
        )
    }

    /// Whether a returning connection may be kept, by the `after_release` hook (true if
    /// none is set). A timeout or a panic says no.
    pub(super) async fn after_release(&self, raw: &mut B::Connection) -> bool {
        let Some(hook) = self.hooks.after_release.as_ref() else {
            return true;
        };
        run(
            self.key,
            &self.counters,
            HookPoint::AfterRelease,
            self.hooks.timeout,
            None,
            hook(raw),
        )
        .await
        .unwrap_or(false)
    }

    /// What an acquire gets when `before_acquire` failed.
    pub(super) fn before_acquire_failed(&self, failure: HookFailure) -> Error {
        self.hook_error(HookPoint::BeforeAcquire, failure.reason())
    }
}

impl<B: Backend> PoolShared<B> {
    /// Whether the pool runs `hooks` (clones of the ones it was created with).
    pub(crate) fn runs_hooks(&self, hooks: &Hooks<B::Connection>) -> bool {
        self.hooks.same_as(hooks)
    }
}

impl<B: Backend> PoolShared<B> {
    /// Close `conn` for `reason`: at once, or after the `before_close` hook in a task of
    /// its own (counted closed when that ends; its reason at once).
    pub(crate) fn close_conn(&self, conn: Conn<B::Connection>, reason: CloseReason) {
        self.observe.closed(reason);
        if let Some(conn) =
            close_after_hook(self.key, &self.counters, &self.capacity, &self.hooks, conn)
        {
            drop(conn);
            self.counters.closed();
            self.capacity.closed();
        }
    }
}
