//! Duration percentiles over a sliding window, cheap to record into from many tasks at
//! once: two slices of atomic log-scale buckets, the current one recorded into, the other
//! holding the slice before; rotated by the pool's maintenance run.
//!
//! Zero durations need not be recorded: a window can be told, when it is read or rotated,
//! a running total of the events it stands for (the pool's served count for its wait
//! window), and counts the events it was not told of as zeros. The usual acquire waits
//! for nothing; recording that would take a contended cache line from the other cores on
//! every acquire, where the total is counted on a line the acquire writes anyway.
//!
//! Hand-written rather than a crate: `hdrhistogram` needs `&mut` (a mutex per record),
//! `metrics-util`'s atomic bucket keeps every sample until drained (memory grows with
//! traffic). Here a record is one relaxed `fetch_add` on a bucket plus a relaxed load
//! (and rarely a `fetch_max`) for the maximum: no lock, no allocation. Buckets are a
//! quarter of a power of two wide (4 per octave, from 1 ns to about 73 minutes), so a
//! percentile is off by at most 12.5 % of its value; the maximum is exact.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Serialize, Serializer};
use tokio::time::Instant;

/// Sub-buckets per power of two.
const SUB_BITS: u32 = 2;
const SUB: usize = 1 << SUB_BITS;
/// Values are clamped to below `2^TOP_BIT` ns (≈ 73 min) for the buckets.
const TOP_BIT: u32 = 42;
/// Bucket count: values below `SUB` get one each, then `SUB` per octave.
pub(crate) const BUCKETS: usize = SUB * (TOP_BIT - SUB_BITS + 1) as usize;

/// The bucket of `ns`.
#[inline]
pub(crate) fn bucket(ns: u64) -> usize {
    let ns = ns.min((1u64 << TOP_BIT) - 1);
    if ns < SUB as u64 {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros();
    let octave = (msb - SUB_BITS + 1) as usize;
    let sub = ((ns >> (msb - SUB_BITS)) as usize) & (SUB - 1);
    octave * SUB + sub
}

/// The value a bucket stands for, in ns: the middle of its range.
pub(crate) fn midpoint(bucket: usize) -> u64 {
    if bucket < SUB {
        return bucket as u64;
    }
    let octave = (bucket / SUB) as u32;
    let sub = (bucket % SUB) as u64;
    let shift = octave - 1;
    let low = (SUB as u64 + sub) << shift;
    low + ((1u64 << shift) >> 1)
}

/// One slice of the window: its buckets.
struct Slice {
    buckets: [AtomicU32; BUCKETS],
}

impl Slice {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// Percentiles of one window. In this order (`repr(C)`, on a line of its own): what a
/// record reads and writes besides its bucket shares one cache line, so a record touches
/// two lines.
#[repr(C, align(64))]
pub(crate) struct Window {
    current: AtomicUsize,
    /// Each slice's largest duration, ns.
    max_ns: [AtomicU64; 2],
    /// When each slice became the current one, ms after `epoch`.
    started_ms: [AtomicU64; 2],
    /// How long a slice is current, ms.
    slice_ms: u64,
    epoch: Instant,
    slices: [Slice; 2],
    /// The running total (see the module doc) when each slice became current; read only
    /// when the window is read or rotated, so kept off the line a record touches.
    base: [AtomicU64; 2],
}

impl Window {
    /// A window of about `2 * slice` (the current slice and the one before).
    pub(crate) fn new(slice: Duration) -> Self {
        Self {
            current: AtomicUsize::new(0),
            max_ns: [AtomicU64::new(0), AtomicU64::new(0)],
            started_ms: [AtomicU64::new(0), AtomicU64::new(0)],
            slice_ms: slice.as_millis().min(u128::from(u64::MAX)) as u64,
            epoch: Instant::now(),
            slices: [Slice::new(), Slice::new()],
            base: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Record one duration: a relaxed add, a relaxed load and, for a new maximum, a
    /// `fetch_max`.
    #[inline]
    pub(crate) fn record(&self, d: Duration) {
        let ns = d.as_nanos().min(u64::MAX as u128) as u64;
        let cur = self.current.load(Ordering::Relaxed) & 1;
        self.slices[cur].buckets[bucket(ns)].fetch_add(1, Ordering::Relaxed);
        let max = &self.max_ns[cur];
        if ns > max.load(Ordering::Relaxed) {
            max.fetch_max(ns, Ordering::Relaxed);
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The slice recorded into now (0 or 1), and the other.
    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) & 1
    }

    /// Nothing happened since the last two rotations: both slices are empty (a record
    /// sets the maximum, or counts in bucket 0 when it is a zero duration) and `total`
    /// has not moved since the older slice began.
    pub(crate) fn quiet(&self, total: u64) -> bool {
        let older = 1 - self.current();
        total == self.base[older].load(Ordering::Relaxed)
            && (0..2).all(|i| {
                self.max_ns[i].load(Ordering::Relaxed) == 0
                    && self.slices[i].buckets[0].load(Ordering::Relaxed) == 0
            })
    }

    /// The counts of slice `i`, bucket by bucket, with the events counted in `total` but
    /// not recorded (zeros, see the module doc) added to bucket 0.
    pub(crate) fn counts(&self, i: usize, total: u64) -> [u64; BUCKETS] {
        let mut counts = [0u64; BUCKETS];
        for (c, b) in counts.iter_mut().zip(&self.slices[i & 1].buckets) {
            *c = u64::from(b.load(Ordering::Relaxed));
        }
        let recorded: u64 = counts.iter().sum();
        counts[0] += self.counted(i, total).saturating_sub(recorded);
        counts
    }

    /// Events of slice `i` by `total` (see the module doc), recorded or not. A record
    /// racing with a read may be counted in `total` and not yet in its bucket, or the
    /// reverse: [`counts`](Self::counts) subtracts what was recorded saturating at zero.
    fn counted(&self, i: usize, total: u64) -> u64 {
        let cur = self.current();
        let (from, to) = if i & 1 == cur {
            (self.base[cur].load(Ordering::Relaxed), total)
        } else {
            (
                self.base[1 - cur].load(Ordering::Relaxed),
                self.base[cur].load(Ordering::Relaxed),
            )
        };
        to.saturating_sub(from)
    }

    /// Whether the current slice is due to be replaced at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        let started = self.started_ms[self.current()].load(Ordering::Relaxed);
        self.ms(now).saturating_sub(started) >= self.slice_ms
    }

    /// Make the other slice current, emptied, from `total` (the running total now; 0 for
    /// a window that records every event). One caller at a time (the maintenance run); a
    /// record racing with it lands in the slice it read, counted all the same.
    pub(crate) fn rotate(&self, now: Instant, total: u64) {
        let next = 1 - self.current();
        for b in &self.slices[next].buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.max_ns[next].store(0, Ordering::Relaxed);
        self.started_ms[next].store(self.ms(now), Ordering::Relaxed);
        self.base[next].store(total, Ordering::Relaxed);
        self.current.store(next, Ordering::Relaxed);
    }

    /// The figures of the current slice and, unless it is older than the window, the
    /// one before; `total` as for [`rotate`](Self::rotate).
    pub(crate) fn percentiles(&self, now: Instant, total: u64) -> Percentiles {
        let cur = self.current();
        let now_ms = self.ms(now);
        let window_ms = 2 * self.slice_ms;
        let mut counts = [0u64; BUCKETS];
        let mut max = 0;
        for i in 0..2 {
            let started = self.started_ms[i].load(Ordering::Relaxed);
            if i != cur && now_ms.saturating_sub(started) > window_ms {
                continue;
            }
            for (c, n) in counts.iter_mut().zip(self.counts(i, total)) {
                *c += n;
            }
            max = max.max(self.max_ns[i].load(Ordering::Relaxed));
        }
        let count: u64 = counts.iter().sum();
        let at = |q: f64| -> Duration {
            if count == 0 {
                return Duration::ZERO;
            }
            let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Duration::from_nanos(midpoint(i).min(max));
                }
            }
            Duration::from_nanos(max)
        };
        Percentiles {
            count,
            p50: at(0.50),
            p99: at(0.99),
            max: Duration::from_nanos(max),
        }
    }
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Percentiles of a duration over the pool's sliding window (the last 30 to 60 s: two
/// slices of 30 s, rotated by the maintenance tick). Serialized in seconds (`f64`).
/// Percentiles are within 12.5 % of the exact value; `max` is exact. All zero when
/// nothing was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// Durations recorded in the window.
    pub count: u64,
    /// Median.
    #[serde(serialize_with = "secs")]
    pub p50: Duration,
    /// 99th percentile.
    #[serde(serialize_with = "secs")]
    pub p99: Duration,
    /// Largest.
    #[serde(serialize_with = "secs")]
    pub max: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_cover_their_midpoints() {
        let mut last = 0;
        for ns in (0..100_000u64).chain([1 << 30, (1 << 42) - 1, u64::MAX]) {
            let b = bucket(ns);
            assert!(b >= last, "{ns}");
            assert!(b < BUCKETS);
            last = b;
        }
        for b in 0..BUCKETS {
            assert_eq!(bucket(midpoint(b)), b, "bucket {b}");
        }
        for ns in [5u64, 100, 12_345, 9_999_999, 1 << 35] {
            let m = midpoint(bucket(ns)) as f64;
            assert!((m - ns as f64).abs() / ns as f64 <= 0.125, "{ns} ~ {m}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn percentiles_over_two_slices() {
        let w = Window::new(Duration::from_secs(30));
        assert_eq!(w.percentiles(Instant::now(), 0), Percentiles::default());
        for ms in 1..=100u64 {
            w.record(Duration::from_millis(ms));
        }
        let p = w.percentiles(Instant::now(), 0);
        assert_eq!((p.count, p.max), (100, Duration::from_millis(100)));
        let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1e3 - ms).abs() <= ms * 0.125;
        assert!(near(p.p50, 50.0), "{p:?}");
        assert!(near(p.p99, 99.0), "{p:?}");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(w.due(Instant::now()));
        w.rotate(Instant::now(), 0);
        w.record(Duration::from_millis(1));
        assert_eq!(w.percentiles(Instant::now(), 0).count, 101, "both slices");
        tokio::time::advance(Duration::from_secs(30)).await;
        w.rotate(Instant::now(), 0);
        let p = w.percentiles(Instant::now(), 0);
        assert_eq!((p.count, p.max), (1, Duration::from_millis(1)));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            w.percentiles(Instant::now(), 0).count,
            0,
            "the other slice is too old"
        );
    }

    /// Events counted in the running total but not recorded are zeros, per slice; a
    /// window is quiet only when neither records nor the total moved over two slices.
    #[tokio::test(start_paused = true)]
    async fn unrecorded_events_count_as_zeros() {
        let w = Window::new(Duration::from_secs(30));
        assert!(w.quiet(0));
        // 98 events, 2 of them recorded (they waited): the rest waited for nothing.
        w.record(Duration::from_millis(5));
        w.record(Duration::from_millis(7));
        let p = w.percentiles(Instant::now(), 98);
        assert_eq!(
            (p.count, p.p50, p.max),
            (98, Duration::ZERO, Duration::from_millis(7))
        );
        assert!(p.p99 > Duration::from_millis(4), "{p:?}");
        assert!(!w.quiet(98));
        tokio::time::advance(Duration::from_secs(30)).await;
        w.rotate(Instant::now(), 98);
        // The slice before keeps its 96 zeros; the new one counts from 98.
        assert_eq!(w.counts(1 - w.current(), 100)[0], 96);
        assert_eq!(w.counts(w.current(), 100)[0], 2);
        assert_eq!(w.percentiles(Instant::now(), 100).count, 100);
        tokio::time::advance(Duration::from_secs(30)).await;
        w.rotate(Instant::now(), 100);
        assert_eq!(w.percentiles(Instant::now(), 100).count, 2);
        assert!(!w.quiet(100), "2 events since the older slice began");
        tokio::time::advance(Duration::from_secs(30)).await;
        w.rotate(Instant::now(), 100);
        assert!(w.quiet(100));
        assert!(!w.quiet(101));
        // A record racing ahead of the total never makes a negative count.
        w.record(Duration::from_millis(1));
        assert_eq!(w.counts(w.current(), 100)[0], 0);
    }
}
