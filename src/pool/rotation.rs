//! Credential rotation: a caller presenting a credential other than the pool's gets it
//! verified with one connect; authenticated, it becomes the pool's (`credential.rs` holds
//! the versions) and the idle connections of the old one are closed.

use std::sync::Arc;

use super::conn::Conn;
use super::credential::{Presented, Version};
use super::shared::PoolShared;
use crate::backends::Backend;
use crate::error::{BackendError, BackendErrorKind, Error, Phase};
use crate::observe::reason::CloseReason;

impl<B: Backend> PoolShared<B> {
    /// The version a caller presenting `presented` is served with, if it is the pool's
    /// credential; `None`: verify it first.
    pub(crate) fn credential_for(&self, presented: &Presented) -> Option<Arc<Version>> {
        self.credential.same(presented)
    }

    /// The credential connects use now.
    pub(crate) fn credential_current(&self) -> Arc<Version> {
        self.credential.current()
    }

    /// Verify `presented` with one connect (on the callers' runtime when known, see
    /// `home.rs`). Authenticated: it becomes the pool's credential, the connection joins
    /// the pool's idle ones (when there is room), and the idle connections of the old one
    /// are closed (checked-out ones as they come back). Refused, or any other failure: the
    /// caller gets the error and the pool is untouched (its figures, its health, its
    /// connections).
    pub(crate) async fn verify_credential(
        self: &Arc<Self>,
        presented: Presented,
    ) -> Result<Arc<Version>, Error> {
        self.check_open()?;
        if let Some(home) = self.home.get() {
            let pool = Arc::clone(self);
            match home
                .spawn(async move { pool.verify_here(presented).await })
                .await
            {
                Ok(outcome) => return outcome,
                Err(e) if e.is_cancelled() => {
                    self.home.forget();
                    return Err(Error::Backend {
                        key: self.key,
                        phase: Phase::Connect,
                        source: BackendError::new(
                            BackendErrorKind::Other,
                            "the runtime verifying the credential shut down",
                        ),
                    });
                }
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        // No home runtime known yet: verify here, and close the connection rather than
        // keep one driven from the supervisor's thread.
        let (version, conn) = self.verify_once(presented).await?;
        if let Some(conn) = conn {
            self.close_conn(conn, CloseReason::Overflow);
        }
        Ok(version)
    }

    async fn verify_here(&self, presented: Presented) -> Result<Arc<Version>, Error> {
        let (version, conn) = self.verify_once(presented).await?;
        if let Some(conn) = conn {
            // Adopted as an idle connection when there is room for one more.
            if self.hot.is_open() && self.counters.live() <= self.slots.max_size() {
                // Through `after_connect` like any new connection (closed if it fails).
                if let Ok(Ok(conn)) = self.after_connect(conn, None).await {
                    self.file_idle(conn);
                }
            } else {
                self.close_conn(conn, CloseReason::Overflow);
            }
        }
        Ok(version)
    }

    /// One connect with `presented`; authenticated, rotate to it. The connection is
    /// answered (already counted open) for the caller to keep or close.
    async fn verify_once(
        &self,
        presented: Presented,
    ) -> Result<(Arc<Version>, Option<Conn<B::Connection>>), Error> {
        let candidate = Version::candidate(presented);
        let (raw, budget) = self.connect_candidate(&candidate).await.inspect_err(|e| {
            tracing::info!(pool = %self.key, error = %e, "a different credential was presented and did not authenticate; the pool keeps its own");
        })?;
        let (version, rotated) = self.credential.rotate(candidate.into_presented());
        if rotated {
            // A connect with it succeeded: the pool is fit to serve again if the old
            // credential had stopped working.
            self.health.set_healthy(true);
            // Dedicated connections of the old credential are told to close
            // (`DedicatedConnection::closed` watches the state).
            self.hot.wake_waiters();
            let closed = self.drain_retired();
            tracing::info!(pool = %self.key, epoch = version.epoch(), idle_closed = closed, "credential rotated; connections of the old one close as they come back");
        }
        Ok((version.clone(), Some(self.adopt(raw, version, budget))))
    }

    /// Close the idle connections of retired credentials; answers how many.
    fn drain_retired(&self) -> usize {
        let doomed = self.idle.take_where(|c, _| c.credential.retired());
        let n = doomed.len();
        doomed
            .into_iter()
            .for_each(|c| self.close_conn(c, CloseReason::StaleGeneration));
        n
    }
}
