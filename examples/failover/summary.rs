//! The summary printed at the end of a run: what was served and what failed; then, for the
//! scripted run, how long each fault took to be seen, and against real servers, what was
//! seen.

use std::sync::atomic::Ordering;

use poolwarden::backends::sim::SimBackend;
use poolwarden::PoolKey;
use tokio::time::Instant;

use crate::demo::Demo;
use crate::workload::Workload;

impl<B: Workload> Demo<B> {
    pub fn totals_summary(&self, interrupted: bool) -> Vec<String> {
        let t = &self.totals;
        let elapsed = self.start.elapsed().as_secs_f64();
        let (reads, writes) = (
            t.reads.load(Ordering::Relaxed),
            t.writes.load(Ordering::Relaxed),
        );
        let (read_errors, write_errors) = (
            t.read_errors.load(Ordering::Relaxed),
            t.write_errors.load(Ordering::Relaxed),
        );
        let per_member: Vec<String> = self
            .order
            .iter()
            .map(|k| {
                let c = &self.members[k];
                format!(
                    "{} {}r/{}w",
                    self.label(*k),
                    c.reads.load(Ordering::Relaxed),
                    c.writes.load(Ordering::Relaxed)
                )
            })
            .collect();
        let mut lines = vec![
            format!(
                "ran {elapsed:.1} s{}",
                if interrupted { " (interrupted)" } else { "" }
            ),
            format!(
                "reads served:             {reads} ({:.0}/s), {} of them read-your-writes",
                reads as f64 / elapsed,
                t.ryw_reads.load(Ordering::Relaxed)
            ),
            format!(
                "writes served:            {writes} ({:.0}/s)",
                writes as f64 / elapsed
            ),
            format!("per member:               {}", per_member.join(", ")),
            format!(
                "errors seen by callers:   {} ({read_errors} reads, {write_errors} writes)",
                read_errors + write_errors
            ),
        ];
        lines.push(format!(
            "longest wait for a connection: {:.0} ms (read), {:.0} ms (write)",
            t.slowest_read_us.load(Ordering::Relaxed) as f64 / 1000.0,
            t.slowest_write_us.load(Ordering::Relaxed) as f64 / 1000.0
        ));
        if reads + read_errors > 0 {
            lines.push(format!(
                "read success rate:        {:.3}%",
                100.0 * reads as f64 / (reads + read_errors) as f64
            ));
        }
        lines
    }

    pub fn print_summary(&self, lines: &[String]) {
        println!("\n=== summary ===");
        for l in lines {
            println!("{l}");
        }
    }
}

/// The scripted run's summary: the totals, then how long each fault took to be seen
/// (`keys`: the pools of `db1` to `db4`).
pub fn scripted(demo: &Demo<SimBackend>, interrupted: bool, keys: [PoolKey; 4]) -> Vec<String> {
    let [k_db1, k_db2, k_db3, _] = keys;
    let marks = demo.marks.lock().unwrap().clone();
    let ejections = demo.ejections.lock().unwrap().clone();
    let writes = demo.writes.lock().unwrap().clone();
    let mut lines = demo.totals_summary(interrupted);
    let eject = |key: PoolKey, usable: bool, after: Option<Instant>| {
        after.and_then(|a| {
            ejections
                .iter()
                .find(|e| e.key == key && e.usable == usable && e.at >= a)
                .map(|e| e.at)
        })
    };
    // `what: took (why)`, or why there is no figure.
    let mut timed = |what: &str, from: Option<Instant>, to: Option<Instant>, why: String| {
        let figure = match (from, to) {
            (Some(f), Some(t)) => format!("{:.0} ms ({why})", (t - f).as_secs_f64() * 1000.0),
            (None, _) => "n/a (the run ended before the fault)".into(),
            (Some(_), None) => "n/a (did not happen before the end of the run)".into(),
        };
        lines.push(format!("{:<26}{figure}", format!("{what}:")));
    };
    timed(
        "time to eject db3",
        marks.replica_killed,
        eject(k_db3, false, marks.replica_killed),
        "from its kill until the set stopped routing to it".into(),
    );
    timed(
        "time to eject db1",
        marks.primary_killed,
        eject(k_db1, false, marks.primary_killed),
        "the primary".into(),
    );
    let first_write_on_db2 = marks
        .primary_killed
        .and_then(|k| writes.first_ok.get(&k_db2).copied().filter(|t| *t >= k));
    let promoted_after = match (marks.primary_killed, marks.promoted) {
        (Some(k), Some(p)) => format!("{:.0} ms", (p - k).as_secs_f64() * 1000.0),
        _ => "n/a".into(),
    };
    timed(
        "time to fail over",
        marks.primary_killed,
        first_write_on_db2,
        format!(
            "from the primary's kill until a write succeeded on db2, which was promoted \
             {promoted_after} after the kill"
        ),
    );
    timed(
        "time to readmit db3",
        marks.healed,
        eject(k_db3, true, marks.healed),
        "from the heal until the set routed to it again".into(),
    );
    timed(
        "time to readmit db1",
        marks.healed,
        eject(k_db1, true, marks.healed),
        "as a replica".into(),
    );
    lines
}

/// The summary of a run against real servers: the totals, then the members ejected and
/// readmitted and the moves of the writes, as seen.
#[cfg(feature = "postgres")]
pub fn observed(
    demo: &Demo<poolwarden::backends::postgres::PostgresBackend>,
    interrupted: bool,
) -> Vec<String> {
    let ejections = demo.ejections.lock().unwrap().clone();
    let writes = demo.writes.lock().unwrap().clone();
    let mut lines = demo.totals_summary(interrupted);
    if ejections.is_empty() {
        lines.push("ejections: none (no member became unusable)".into());
    }
    for e in &ejections {
        lines.push(format!(
            "{} {} at {:.2}s",
            demo.label(e.key),
            if e.usable { "readmitted" } else { "ejected" },
            (e.at - demo.start).as_secs_f64()
        ));
    }
    if writes.moves.is_empty() {
        lines.push("time to fail over: n/a (writes never moved to another member)".into());
    }
    for m in &writes.moves {
        let outage = m
            .failing_since
            .map(|f| {
                format!(
                    "{:.0} ms after the first failed write",
                    (m.at - f).as_secs_f64() * 1000.0
                )
            })
            .unwrap_or_else(|| "without a failed write".into());
        lines.push(format!(
            "writes moved from {} to {} at {:.2}s, {outage}",
            demo.label(m.from),
            demo.label(m.to),
            (m.at - demo.start).as_secs_f64()
        ));
    }
    lines
}
