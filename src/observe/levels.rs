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
