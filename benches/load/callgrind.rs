//! Instructions per acquire + release, one task, counted by callgrind: what decides
//! scenario 1's 1-task case (wall-clock ratios of a ~100 ns operation drift more than the
//! target's margin). The same count as `benches/instructions.sh`: the `instructions` bench
//! binary (`benches/instructions.rs`) run under `valgrind --tool=callgrind` at two
//! iteration counts, the difference divided by theirs, so start-up and shut-down cancel out.
//!
//! Counted only in a full run, when `valgrind` is on the PATH and an `instructions` binary
//! built after the poolwarden library sits beside this one (`cargo bench --bench
//! instructions --no-run` builds it), and only while the whole count stays under [`BUDGET`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// The pools counted (names of `benches/instructions.rs`).
pub const POOLS: [&str; 6] = [
    "poolwarden",
    "poolwarden-recorder",
    "poolwarden-sim",
    "bb8-notest",
    "deadpool",
    "floor",
];
const LOW: u64 = 5_000;
const HIGH: u64 = 15_000;
/// Most time the counts may take.
pub const BUDGET: Duration = Duration::from_secs(30);
/// How to count by hand.
pub const COMMAND: &str = "cargo bench --bench instructions --no-run && benches/instructions.sh";

/// Instructions per acquire + release of each of [`POOLS`], in that order.
pub fn count() -> Result<Vec<u64>, String> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        return Err("valgrind is not installed".into());
    }
    let bin = instructions_binary()?;
    let started = Instant::now();
    let mut out = Vec::new();
    for pool in POOLS {
        let lo = collected(&bin, pool, LOW)?;
        let hi = collected(&bin, pool, HIGH)?;
        out.push(hi.saturating_sub(lo) / (HIGH - LOW));
        if started.elapsed() > BUDGET {
            return Err(format!(
                "counting took over {} s; stopped",
                BUDGET.as_secs()
            ));
        }
    }
    Ok(out)
}

/// The newest `instructions-*` executable beside this binary, if built after the newest
/// poolwarden library there (else it may count an older poolwarden).
fn instructions_binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me.parent().ok_or("no directory for this binary")?;
    let modified = |p: &Path| {
        p.metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    let newest = |keep: &dyn Fn(&str) -> bool| {
        std::fs::read_dir(dir).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(keep))
                .max_by_key(|p| modified(p))
        })
    };
    let bin = newest(&|n| n.starts_with("instructions-") && !n.contains('.'))
        .ok_or("no instructions binary built")?;
    let lib = newest(&|n| n.starts_with("libpoolwarden-") && n.ends_with(".rlib"));
    if lib.is_some_and(|lib| modified(&lib) > modified(&bin)) {
        return Err("the instructions binary is older than the poolwarden library".into());
    }
    Ok(bin)
}

/// Instructions callgrind collected running `pool` for `n` iterations, less those of
/// start-up work whose length depends on time: the clock calibration of the Prometheus
/// recorder (`quanta::Clock::new`, a loop over clock reads until they agree: 8–15 million
/// instructions, a different count each run, which would not cancel out between the two
/// iteration counts).
fn collected(bin: &Path, pool: &str, n: u64) -> Result<u64, String> {
    let file = std::env::temp_dir().join(format!(
        "poolwarden-callgrind-{}-{pool}-{n}.out",
        std::process::id()
    ));
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg(bin)
        .args([pool, &n.to_string()])
        // One task: the uncontended path (`TASKS` makes the binary queue acquires).
        .env("TASKS", "1")
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stderr);
    let total: u64 = text
        .lines()
        .find_map(|l| l.split_once("Collected : ").map(|(_, v)| v.trim()))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("callgrind gave no count for {pool}"))?;
    let annotated = Command::new("callgrind_annotate")
        .arg("--inclusive=yes")
        .arg(&file)
        .output();
    let _ = std::fs::remove_file(&file);
    let annotated = annotated.map_err(|e| format!("callgrind_annotate: {e}"))?;
    let calibration = String::from_utf8_lossy(&annotated.stdout)
        .lines()
        .find(|l| l.contains(CALIBRATION))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.replace(',', "").parse::<u64>().ok())
        .unwrap_or(0);
    Ok(total.saturating_sub(calibration))
}

/// The function whose instructions are left out of a count (see [`collected`]).
pub const CALIBRATION: &str = "quanta::Clock::new";
