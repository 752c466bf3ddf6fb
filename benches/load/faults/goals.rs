//! The goals for each fault, measured against the best peer, and the likely
//! cause of each miss (worded from the figures of the run).

use super::inject::Fault;
use super::pools::{MAX_SIZE, NAMES};
use super::{fmt_back, Run, ID};
use crate::hist::fmt_dur;
use crate::report::{ratio, Table, Target};

fn target(what: String, limit: String, measured: String, pass: bool, by: String) -> Target {
    Target {
        scenario: ID,
        what,
        limit,
        measured,
        pass,
        by: if pass { String::new() } else { by },
        cause: String::new(),
    }
}

/// poolwarden's errors, by kind, in a sentence.
fn error_mix(r: &Run) -> String {
    let e = &r.errors;
    format!(
        "poolwarden's {} caller errors are {} CircuitOpen, {} acquire timeouts, {} other \
         acquire errors and {} query errors ({} of them timeouts); it started {} connects \
         ({} failed) from the fault on",
        e.total(),
        e.circuit_open,
        e.acquire_timeouts,
        e.acquire - e.circuit_open - e.acquire_timeouts,
        e.query,
        e.query_timeouts,
        r.connects,
        r.connects_failed
    )
}

fn errors_cause(fault: Fault, r: &Run) -> String {
    let e = &r.errors;
    let mut s = error_mix(r);
    if e.circuit_open * 2 > e.total() {
        s.push_str(
            ": most acquires failed at once with CircuitOpen while the breaker was open, \
             where waiting up to the acquire timeout for a connect would have served them",
        );
        if fault == Fault::ConnLimit {
            s.push_str(
                " (the breaker counts refused connects against the endpoint even though 2 \
                 connections kept working)",
            );
        }
    } else if e.query > e.acquire {
        s.push_str(": most errors are queries on connections the fault had broken");
    }
    s.push('.');
    s
}

/// The goals table of `fault`, its targets, and a note naming the best peer.
/// `healthy`: each pool's healthy throughput over the whole scenario.
pub fn evaluate(fault: Fault, runs: &[Run], healthy: &[f64]) -> (Table, Vec<Target>, String) {
    let pw = &runs[0];
    let eligible: Vec<usize> = (1..runs.len())
        .filter(|&i| healthy[i] >= 0.95 * healthy[0])
        .collect();
    let (pool, fallback): (Vec<usize>, bool) = if eligible.is_empty() {
        ((1..runs.len()).collect(), true)
    } else {
        (eligible, false)
    };
    let best = *pool
        .iter()
        .min_by_key(|&&i| (runs[i].errors.total(), runs[i].longest))
        .expect("peers");
    let b = &runs[best];
    let note = format!(
        "best peer: {} (caller errors: {}; healthy throughput {} poolwarden's){}.",
        NAMES[best],
        b.errors.total(),
        ratio(healthy[best] / healthy[0].max(1e-9)),
        if fallback {
            "; no peer ran at ≥ 0.95x poolwarden's healthy throughput, so every peer was \
             considered"
        } else {
            ""
        }
    );
    let short = fault.short();
    let mut t = Vec::new();

    let (err, inflight) = (pw.errors.total(), pw.in_flight as u64);
    t.push(
        target(
            format!("{short}: caller errors ≤ queries in flight when it struck"),
            format!("≤ {inflight}"),
            format!("{err} ({inflight} in flight)"),
            err <= inflight,
            format!("{} more", err.saturating_sub(inflight)),
        )
        .because(errors_cause(fault, pw)),
    );
    let be = b.errors.total();
    t.push(
        target(
            format!("{short}: caller errors ≤ the best peer's"),
            format!("≤ {be}"),
            format!("{err} vs {be} of {}", NAMES[best]),
            err <= be,
            format!("{} more", err.saturating_sub(be)),
        )
        .because(errors_cause(fault, pw)),
    );
    let (l, bl) = (pw.longest, b.longest);
    t.push(
        target(
            format!("{short}: longest stretch without a success ≤ the best peer's"),
            format!("≤ {}", fmt_dur(bl)),
            format!("{} vs {} of {}", fmt_dur(l), fmt_dur(bl), NAMES[best]),
            l <= bl,
            format!("{} longer", fmt_dur(l.saturating_sub(bl))),
        )
        .because(format!(
            "service came back {} after the server did, the best peer's {}; {}.",
            fmt_back(pw.back_to_ok),
            fmt_back(b.back_to_ok),
            error_mix(pw)
        )),
    );
    t.push(
        target(
            format!("{short}: peak concurrent connects ≤ max_size"),
            format!("≤ {MAX_SIZE}"),
            pw.peak.to_string(),
            pw.peak <= MAX_SIZE as usize,
            format!("{} more", pw.peak.saturating_sub(MAX_SIZE as usize)),
        )
        .because("connects are not bounded by the pool's size."),
    );
    let mut table = Table::new(
        format!("goals ({note})"),
        &["goal", "limit", "poolwarden", "result"],
    );
    for x in &t {
        table.row(vec![
            x.what
                .split_once(": ")
                .map_or(x.what.clone(), |(_, w)| w.to_string()),
            x.limit.clone(),
            x.measured.clone(),
            if x.pass {
                "pass".into()
            } else {
                format!("FAIL ({})", x.by)
            },
        ]);
    }
    (table, t, note)
}
