//! What the load counts: reads, writes and errors per member and in all, the longest waits
//! for a connection, the members the set stopped or started routing to, and what the writers
//! saw.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use poolwarden::PoolKey;
use tokio::time::Instant;

#[derive(Default)]
pub struct MemberCounters {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Default)]
pub struct Totals {
    pub reads: AtomicU64,
    pub read_errors: AtomicU64,
    pub writes: AtomicU64,
    pub write_errors: AtomicU64,
    /// Read-your-writes reads (with a causality token) that were served.
    pub ryw_reads: AtomicU64,
    /// The longest acquire of a read and of a write, in microseconds.
    pub slowest_read_us: AtomicU64,
    pub slowest_write_us: AtomicU64,
}

pub fn record_wait(max: &AtomicU64, since: Instant) {
    let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
    max.fetch_max(us, Ordering::Relaxed);
}

/// A member the set stopped (or started again) routing to, as seen in `topology()`.
#[derive(Debug, Clone)]
pub struct Ejection {
    pub key: PoolKey,
    pub usable: bool,
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct WriteMove {
    pub from: PoolKey,
    pub to: PoolKey,
    pub failing_since: Option<Instant>,
    pub at: Instant,
}

/// What the writers saw.
#[derive(Debug, Clone, Default)]
pub struct WriteLog {
    pub last_key: Option<PoolKey>,
    pub failing_since: Option<Instant>,
    pub first_ok: HashMap<PoolKey, Instant>,
    pub moves: Vec<WriteMove>,
}

impl WriteLog {
    pub fn ok(&mut self, key: PoolKey, at: Instant) {
        self.first_ok.entry(key).or_insert(at);
        if let Some(from) = self.last_key.filter(|k| *k != key) {
            self.moves.push(WriteMove {
                from,
                to: key,
                failing_since: self.failing_since,
                at,
            });
        }
        self.last_key = Some(key);
        self.failing_since = None;
    }

    pub fn failed(&mut self, at: Instant) {
        self.failing_since.get_or_insert(at);
    }
}
