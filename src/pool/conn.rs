//! What the pool knows about one live connection.

use tokio::time::Instant;

/// A live connection and its bookkeeping.
pub(crate) struct Conn<C> {
    pub(crate) raw: C,
    pub(crate) created: Instant,
    pub(crate) expires: Option<Instant>,
    pub(crate) last_used: Instant,
    pub(crate) generation: u64,
    /// Leak-tracker id of the current checkout; 0 when leak detection is off.
    pub(crate) checkout: u64,
}

impl<C> Conn<C> {
    /// Past its lifetime, or opened by an earlier incarnation of the pool actor.
    #[inline]
    pub(crate) fn outlived(&self, generation: u64, now: Instant) -> bool {
        self.generation != generation || self.expires.is_some_and(|e| e <= now)
    }
}
