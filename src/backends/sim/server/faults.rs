//! Fault injection on a [`SimServer`]: taking it down, scheduled outages, server-side
//! kills, armed connect failures, panics and stalls, and the password it requires.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

#[cfg(doc)]
use super::super::SimConnection;
use super::{Outage, SimServer, RELAXED};
#[cfg(doc)]
use crate::backends::Backend;
use crate::error::BackendErrorKind;
use crate::secret::Secret;

impl SimServer {
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
        let start = crate::limits::deadline(now, start_after);
        let mut st = self.inner.state.lock();
        st.outages.push(Outage {
            start,
            end: crate::limits::deadline(start, duration),
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

    /// The next `n` broken-connection checks (`is_broken`, synchronous, on every return
    /// and checkout) panic with `simulated panic in check`.
    pub fn panic_on_next_checks(&self, n: usize) {
        self.inner.panic_checks.fetch_add(n, RELAXED);
    }

    /// The next `n` `needs_reset` checks (on return) panic with
    /// `simulated panic in reset check`.
    pub fn panic_on_next_reset_checks(&self, n: usize) {
        self.inner.panic_reset_checks.fetch_add(n, RELAXED);
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

    /// The next `n` probes fail with a [`Query`](BackendErrorKind::Query) error
    /// `simulated probe failure` (the connection stays usable).
    pub fn fail_next_probes(&self, n: usize) {
        self.inner.fail_probes.fetch_add(n, RELAXED);
    }

    /// While `true`, new connects are refused with `connection refused` (the listener is
    /// gone) but open connections keep working.
    pub fn refuse_new_connections(&self, refuse: bool) {
        self.inner.refusing.store(refuse, RELAXED);
    }

    /// Accept at most `max` connections at once (`None`: no limit): a connect past it
    /// fails with a [`Capacity`](BackendErrorKind::Capacity) error, as PostgreSQL's
    /// "sorry, too many clients already". Open connections are not affected.
    pub fn set_max_connections(&self, max: Option<usize>) {
        self.inner.state.lock().max_connections = max;
    }

    /// The next `n` connects that reach the server fail with an error of `kind` (e.g.
    /// [`Config`](BackendErrorKind::Config), as an unknown database would).
    pub fn fail_next_connects_as(&self, kind: BackendErrorKind, n: usize) {
        let mut st = self.inner.state.lock();
        st.armed_failures.extend(std::iter::repeat_n(kind, n));
    }
}
