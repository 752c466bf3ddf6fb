//! Observability: what the pools record for metrics (through the `metrics` facade, with
//! the `metrics` feature), for [`PoolStats`](crate::PoolStats) (percentile windows, close
//! reasons) and for leak reports. The pool calls in; this folder imports nothing of the
//! pool (no import circle).
//!
//! - `names.rs`: every metric name and attribute key (OpenTelemetry's and `poolwarden.`'s)
//! - `reason.rs`: [`CloseReason`], [`CloseCounts`]
//! - `window.rs`: [`Percentiles`] over a sliding window of atomic log-scale buckets
//! - `pool.rs`: one pool's observer (label, windows, close counts, handles)
//! - `handles.rs`: one pool's `metrics` handles, registered once (feature `metrics`)
//! - `member.rs`: a replica-set member's handles (feature `metrics`)
//! - `leaks.rs`: [`LeakReport`], backtrace trimming
//! - `levels.rs`: the sizes and counts a pool hands its observer each tick

#[cfg(feature = "metrics")]
mod handles;
pub(crate) mod leaks;
mod levels;
pub(crate) mod member;
pub mod names;
pub(crate) mod pool;
pub(crate) mod reason;
pub(crate) mod window;

pub use leaks::LeakReport;
pub use reason::{CloseCounts, CloseReason};
pub use window::Percentiles;
