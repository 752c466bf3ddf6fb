//! [`Levels`]: the sizes and counts a pool hands its observer on each maintenance tick.

/// Sizes and counts the pool tracks anyway, handed to `PoolObserver::tick`.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) struct Levels {
    pub(crate) idle: usize,
    pub(crate) used: usize,
    pub(crate) pending: usize,
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) max_overflow: usize,
}

impl Levels {
    /// A digest of the figures, never 0: a tick whose digest is the last one's has
    /// nothing new for the gauges.
    #[cfg(feature = "metrics")]
    pub(crate) fn digest(&self) -> u64 {
        [
            self.idle,
            self.used,
            self.pending,
            self.max_size,
            self.min_idle,
            self.max_overflow,
        ]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &v| {
            (h.rotate_left(5) ^ v as u64).wrapping_mul(0x0100_0000_01b3)
        }) | 1
    }
}
