//! Replication between simulated servers: the role, lag and position of a [`SimServer`].

use std::sync::Arc;
use std::time::Duration;

use super::{SimRole, SimServer};

impl SimServer {
    /// Make this server a replica of `primary`: its role becomes replica and its
    /// position follows the primary's (unless replay is paused).
    pub fn replicate_from(&self, primary: &SimServer) {
        // What it replayed so far stays replayed when it is pointed elsewhere.
        let position = self.position();
        let mut st = self.inner.state.lock();
        st.role = SimRole::Replica;
        st.upstream = Some(primary.clone());
        st.position = position;
    }

    /// Promote a replica: it stops replaying and takes writes from its replayed position.
    pub fn promote(&self) {
        let position = self.position();
        let mut st = self.inner.state.lock();
        st.role = SimRole::Primary;
        st.upstream = None;
        st.replay_paused = false;
        st.position = position;
    }

    /// Stop replaying: the position stays, the lag grows with the primary's writes.
    pub fn pause_replay(&self) {
        let position = self.position();
        let mut st = self.inner.state.lock();
        st.position = position;
        st.replay_paused = true;
    }

    /// Catch up and follow the primary again.
    pub fn resume_replay(&self) {
        self.inner.state.lock().replay_paused = false;
    }

    /// Writes applied (a primary) or replayed (a replica).
    pub fn position(&self) -> u64 {
        // A replica of a replica follows the chain; a chain that loops back (a
        // misconfigured test) stops after a few hops instead of recursing forever.
        self.position_within(8)
    }

    fn position_within(&self, hops: usize) -> u64 {
        let (own, upstream, paused) = {
            let st = self.inner.state.lock();
            (st.position, st.upstream.clone(), st.replay_paused)
        };
        match upstream {
            Some(primary) if !paused && hops > 0 && !Arc::ptr_eq(&primary.inner, &self.inner) => {
                primary.position_within(hops - 1).max(own)
            }
            _ => own,
        }
    }

    /// Set the replication role.
    pub fn set_role(&self, r: SimRole) {
        self.inner.state.lock().role = r;
    }

    /// The replication role. Default: [`SimRole::Primary`].
    pub fn role(&self) -> SimRole {
        self.inner.state.lock().role
    }

    /// Set the replication lag.
    pub fn set_lag(&self, lag: Duration) {
        self.inner.state.lock().lag = lag;
    }

    /// The replication lag. Default: zero.
    pub fn lag(&self) -> Duration {
        self.inner.state.lock().lag
    }
}
