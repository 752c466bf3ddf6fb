//! Memory and CPU figures: a counting global allocator (switched on only while scenario 5
//! measures), resident set size, and the CPU time of the whole process and of its threads
//! by name, all from `/proc`.
//!
//! This is the only `unsafe` of the suite: a `GlobalAlloc` must be an `unsafe impl`. It
//! forwards every call unchanged to the system allocator and only adds to or subtracts from
//! an atomic counter while counting is on (one relaxed load otherwise, so the other
//! scenarios pay nothing measurable). The library itself stays `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every method forwards its arguments to `System`, which upholds the `GlobalAlloc`
// contract; the counters never affect what is returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same contract as this method's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ON.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same contract as this method's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same contract as this method's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same contract as this method's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Start counting; answers the mark to pass to [`stop_counting`].
pub fn start_counting() -> i64 {
    let mark = LIVE.load(Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
    mark
}

/// Stop counting; answers the bytes allocated and not freed since `mark` (the net growth
/// of the heap; frees of older blocks count against it, as they should).
pub fn stop_counting(mark: i64) -> i64 {
    ON.store(false, Ordering::Relaxed);
    LIVE.load(Ordering::Relaxed) - mark
}

/// Resident set size of this process, from `/proc/self/statm`.
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    pages * 4096
}

/// User + system CPU ticks in a `/proc/.../stat` line (fields 14 and 15, counted after
/// the `(comm)`, which may hold spaces).
fn stat_ticks(stat: &str) -> u64 {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After the `)`: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    get(11) + get(12)
}

/// USER_HZ, the unit of `/proc` CPU times: 100 on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) of the whole process, every thread, those that have
/// exited included, from `/proc/self/stat`.
pub fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    stat_ticks(&stat) as f64 / TICKS_PER_SECOND
}

/// CPU seconds (user + system) of the living threads, summed by thread name, from
/// `/proc/self/task/*/stat`: where [`process_cpu`] went.
pub fn threads_cpu() -> Vec<(String, f64)> {
    let mut by_name: Vec<(String, f64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for t in tasks.flatten() {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let secs = stat_ticks(&stat) as f64 / TICKS_PER_SECOND;
        let name = name.trim().to_string();
        match by_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, s)) => *s += secs,
            None => by_name.push((name, secs)),
        }
    }
    by_name
}
