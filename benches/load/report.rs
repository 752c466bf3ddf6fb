//! The results: tables, targets with pass/fail, the terminal rendering and
//! `docs/benchmarks.md`.

use std::fmt::Write as _;

use crate::{chart, Ctx};

/// A table of figures.
#[derive(Clone, Default)]
pub struct Table {
    pub caption: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(caption: impl Into<String>, headers: &[&str]) -> Self {
        Self {
            caption: caption.into(),
            headers: headers.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// One target of the issue, measured.
#[derive(Clone)]
pub struct Target {
    pub scenario: u8,
    pub what: String,
    pub limit: String,
    pub measured: String,
    pub pass: bool,
    /// "by how much" when missed (e.g. `1.9x the limit`).
    pub by: String,
    /// The likely cause of a miss (empty when it passed).
    pub cause: String,
}

impl Target {
    /// `value` must be at most `limit` (both ratios or both in the same unit).
    pub fn at_most(
        scenario: u8,
        what: &str,
        value: f64,
        limit: f64,
        shown: String,
        limit_shown: String,
    ) -> Self {
        let pass = value <= limit;
        Self {
            scenario,
            what: what.into(),
            limit: limit_shown,
            measured: shown,
            pass,
            by: if pass {
                String::new()
            } else {
                format!("{:.0}% over", (value / limit - 1.0) * 100.0)
            },
            cause: String::new(),
        }
    }

    /// `value` must be at least `limit`.
    pub fn at_least(
        scenario: u8,
        what: &str,
        value: f64,
        limit: f64,
        shown: String,
        limit_shown: String,
    ) -> Self {
        let pass = value >= limit;
        Self {
            scenario,
            what: what.into(),
            limit: limit_shown,
            measured: shown,
            pass,
            by: if pass {
                String::new()
            } else {
                format!("{:.0}% under", (1.0 - value / limit) * 100.0)
            },
            cause: String::new(),
        }
    }

    pub fn because(mut self, cause: impl Into<String>) -> Self {
        if !self.pass {
            self.cause = cause.into();
        }
        self
    }
}

/// One scenario's results.
pub struct Section {
    pub id: u8,
    pub title: String,
    pub setup: String,
    pub tables: Vec<Table>,
    pub charts: Vec<(String, String)>,
    pub notes: Vec<String>,
    pub skipped: Option<String>,
    pub seconds: f64,
}

impl Section {
    pub fn new(id: u8, title: &str, setup: impl Into<String>) -> Self {
        Self {
            id,
            title: title.into(),
            setup: setup.into(),
            tables: Vec::new(),
            charts: Vec::new(),
            notes: Vec::new(),
            skipped: None,
            seconds: 0.0,
        }
    }

    pub fn skipped(id: u8, title: &str, why: impl Into<String>) -> Self {
        let mut s = Self::new(id, title, "");
        s.skipped = Some(why.into());
        s
    }

    /// Draw a bar chart (see [`chart::hbars`]) into the run's chart directory and show it
    /// under `alt`; a chart that fails is reported on the progress lines, not fatal.
    pub fn bar_chart(
        &mut self,
        ctx: &Ctx,
        (file, alt): (&str, &str),
        title: &str,
        unit: &str,
        bars: &[(String, usize, f64)],
    ) {
        let drawn = chart::hbars(&ctx.chart_dir.join(file), title, unit, bars);
        self.link_chart(ctx, drawn, file, alt);
    }

    /// Draw latency-by-percentile curves (see [`chart::percentiles`]) and show them.
    pub fn percentile_chart(
        &mut self,
        ctx: &Ctx,
        (file, alt): (&str, &str),
        title: &str,
        curves: &[(String, Vec<(f64, f64)>)],
    ) {
        let drawn = chart::percentiles(&ctx.chart_dir.join(file), title, curves);
        self.link_chart(ctx, drawn, file, alt);
    }

    fn link_chart(&mut self, ctx: &Ctx, drawn: Result<(), String>, file: &str, alt: &str) {
        if let Err(e) = drawn {
            ctx.progress(&format!("  chart failed: {e}"));
        }
        self.charts.push((file.into(), alt.into()));
    }
}

/// Facts about the run, for the document's header.
pub struct Meta {
    pub command: String,
    pub quick: bool,
    pub cores: usize,
    pub cpu: String,
    pub rustc: String,
    pub date: String,
    pub load_before: String,
    pub load_after: String,
    pub versions: Vec<(String, String)>,
    pub servers: Vec<String>,
    pub total_seconds: f64,
    /// Busy loops that ran beside the scenarios (`--hog N`).
    pub hog: usize,
}

pub struct Report {
    pub meta: Meta,
    pub sections: Vec<Section>,
    pub targets: Vec<Target>,
    /// The charts' directory, relative to the report.
    pub chart_link: String,
}

fn widths(t: &Table) -> Vec<usize> {
    let mut w: Vec<usize> = t.headers.iter().map(|h| h.chars().count()).collect();
    for r in &t.rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    w
}

fn pad(s: &str, w: usize, right: bool) -> String {
    let n = s.chars().count();
    let fill = " ".repeat(w.saturating_sub(n));
    if right {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

/// A table as aligned text (first column left-aligned, the others right-aligned).
pub fn text_table(t: &Table) -> String {
    let w = widths(t);
    let mut out = String::new();
    if !t.caption.is_empty() {
        let _ = writeln!(out, "  {}", t.caption);
    }
    let line = |cells: &[String]| {
        let mut s = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(&pad(c, w.get(i).copied().unwrap_or(0), i > 0));
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&t.headers));
    let _ = writeln!(
        out,
        "  {}",
        w.iter()
            .map(|n| "-".repeat(*n))
            .collect::<Vec<_>>()
            .join("  ")
    );
    for r in &t.rows {
        let _ = writeln!(out, "{}", line(r));
    }
    out
}

fn md_table(t: &Table) -> String {
    let mut out = String::new();
    if !t.caption.is_empty() {
        let _ = writeln!(out, "{}\n", t.caption);
    }
    let esc = |s: &str| s.replace('|', "\\|");
    let _ = writeln!(
        out,
        "| {} |",
        t.headers
            .iter()
            .map(|h| esc(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        out,
        "|{}|",
        t.headers
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---" } else { "---:" })
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in &t.rows {
        let _ = writeln!(
            out,
            "| {} |",
            r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    out
}

fn targets_table(targets: &[Target]) -> Table {
    let mut t = Table::new(
        "",
        &["#", "target", "limit", "measured", "result", "by how much"],
    );
    for x in targets {
        t.row(vec![
            x.scenario.to_string(),
            x.what.clone(),
            x.limit.clone(),
            x.measured.clone(),
            if x.pass { "pass".into() } else { "FAIL".into() },
            x.by.clone(),
        ]);
    }
    t
}

impl Report {
    pub fn terminal(&self) -> String {
        let mut out = String::new();
        if self.meta.hog > 0 {
            let _ = writeln!(out, "loaded: {} busy loops beside the run", self.meta.hog);
        }
        for s in &self.sections {
            let _ = writeln!(out, "\n[{}] {}", s.id, s.title);
            if let Some(why) = &s.skipped {
                let _ = writeln!(out, "  skipped: {why}");
                continue;
            }
            for t in &s.tables {
                out.push_str(&text_table(t));
            }
        }
        let _ = writeln!(out, "\nTargets");
        out.push_str(&text_table(&targets_table(&self.targets)));
        for x in self.targets.iter().filter(|x| !x.pass) {
            let _ = writeln!(out, "  miss ({}) {}: {}", x.scenario, x.what, x.cause);
        }
        let _ = writeln!(
            out,
            "\ntargets: {} met, {} missed; {:.0} s in all",
            self.targets.iter().filter(|t| t.pass).count(),
            self.targets.iter().filter(|t| !t.pass).count(),
            self.meta.total_seconds
        );
        out
    }

    pub fn markdown(&self, intro: &str, closing: &str) -> String {
        let m = &self.meta;
        let mut out = String::new();
        if m.hog > 0 {
            let _ = writeln!(out, "# Benchmarks on a loaded machine\n");
        } else {
            let _ = writeln!(out, "# Benchmarks\n");
        }
        out.push_str(intro);
        let _ = writeln!(out, "\n## This run\n");
        let _ = writeln!(
            out,
            "- Command: `{}`{}",
            m.command,
            if m.quick {
                " (quick mode: figures are indicative only)"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "- Date: {}", m.date);
        let _ = writeln!(
            out,
            "- Machine: {} cores ({}); load average before the run {}, after {}",
            m.cores, m.cpu, m.load_before, m.load_after
        );
        let busy = |l: &str| {
            l.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v > m.cores as f64 * 0.75)
        };
        if m.hog > 0 {
            let _ = writeln!(
                out,
                "- Loaded: {} busy loops beside the run (`--hog {}`), on purpose: every figure \
                 is of a machine with more runnable work than cores.",
                m.hog, m.hog
            );
        } else if busy(&m.load_before) || busy(&m.load_after) {
            let _ = writeln!(
                out,
                "- Other processes (builds of other work) were running on the same cores during \
                 this run: absolute figures are lower and tails longer than on an idle machine; \
                 the ratios, taken in turns, are what to read."
            );
        }
        let _ = writeln!(out, "- Toolchain: {}", m.rustc);
        let _ = writeln!(
            out,
            "- Versions: {}",
            m.versions
                .iter()
                .map(|(n, v)| format!("{n} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for s in &m.servers {
            let _ = writeln!(out, "- Server: {s}");
        }
        let _ = writeln!(
            out,
            "- Wall time of the whole run: {:.0} s",
            m.total_seconds
        );
        let _ = writeln!(out, "\n## Targets\n");
        out.push_str(&md_table(&targets_table(&self.targets)));
        let misses: Vec<_> = self.targets.iter().filter(|t| !t.pass).collect();
        if !misses.is_empty() {
            let _ = writeln!(out, "\n### Why the misses\n");
            for x in misses {
                let _ = writeln!(
                    out,
                    "- **({}) {}** — {} ({}). {}\n",
                    x.scenario, x.what, x.measured, x.by, x.cause
                );
            }
        }
        for s in &self.sections {
            let _ = writeln!(out, "\n## {}. {}\n", s.id, s.title);
            if let Some(why) = &s.skipped {
                let _ = writeln!(out, "Skipped: {why}");
                continue;
            }
            let _ = writeln!(out, "{}\n", s.setup);
            for t in &s.tables {
                out.push_str(&md_table(t));
                out.push('\n');
            }
            for (file, alt) in &s.charts {
                let _ = writeln!(out, "![{alt}]({}/{file})\n", self.chart_link);
            }
            for n in &s.notes {
                let _ = writeln!(out, "{n}\n");
            }
            let _ = writeln!(out, "_{:.0} s._", s.seconds);
        }
        out.push_str(closing);
        out
    }
}

/// `x` as a ratio, `1.23x`.
pub fn ratio(x: f64) -> String {
    format!("{x:.2}x")
}

/// `12,345`.
pub fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
