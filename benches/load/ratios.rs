//! Wall-clock targets across rounds: a figure taken once per round (the pools measured in
//! turns within it), marked on the median of the rounds and shown with its spread, e.g.
//! `1.02x (0.98–1.05, 3 rounds)`. A ratio is taken within each round, between pools
//! measured seconds apart, before the median: drift between rounds cancels out.

use crate::report::{ratio, Target};

/// One figure per round.
#[derive(Clone, Debug)]
pub struct PerRound(Vec<f64>);

impl PerRound {
    pub fn new(values: Vec<f64>) -> Self {
        assert!(!values.is_empty(), "a figure needs at least one round");
        Self(values)
    }

    /// `a[r] / b[r]` for each round `r`.
    pub fn ratio(a: &PerRound, b: &PerRound) -> Self {
        Self::new(
            a.0.iter()
                .zip(&b.0)
                .map(|(x, y)| x / y.max(f64::MIN_POSITIVE))
                .collect(),
        )
    }

    pub fn values(&self) -> &[f64] {
        &self.0
    }

    pub fn median(&self) -> f64 {
        median(&self.0)
    }

    pub fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    /// The median with its spread: `M (lo–hi, N rounds)`, the median formatted by
    /// `median_fmt`, the bounds by `bound_fmt`.
    pub fn shown_as(
        &self,
        median_fmt: impl Fn(f64) -> String,
        bound_fmt: impl Fn(f64) -> String,
    ) -> String {
        match self.0.len() {
            1 => format!("{} (1 round)", median_fmt(self.median())),
            n => format!(
                "{} ({}–{}, {n} rounds)",
                median_fmt(self.median()),
                bound_fmt(self.min()),
                bound_fmt(self.max())
            ),
        }
    }

    /// As a ratio: `1.02x (0.98–1.05, 3 rounds)`.
    pub fn shown(&self) -> String {
        self.shown_as(ratio, |x| format!("{x:.2}"))
    }
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Of `candidates` (index, per-round figure), the one whose median is best: highest when
/// `higher_is_better`, else lowest. The per-round ratios are then taken against that one.
pub fn best<'a>(
    candidates: impl IntoIterator<Item = (usize, &'a PerRound)>,
    higher_is_better: bool,
) -> (usize, &'a PerRound) {
    candidates
        .into_iter()
        .max_by(|a, b| {
            let o = a.1.median().total_cmp(&b.1.median());
            if higher_is_better {
                o
            } else {
                o.reverse()
            }
        })
        .expect("at least one candidate")
}

/// Which side of its limit a target's median must be.
#[derive(Clone, Copy, Debug)]
pub enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    /// A target on the median of the per-round ratios `r`, shown with their spread and
    /// `detail`.
    pub fn median(scenario: u8, what: &str, r: &PerRound, bound: Bound, detail: &str) -> Self {
        let shown = if detail.is_empty() {
            r.shown()
        } else {
            format!("{}; {detail}", r.shown())
        };
        type Make = fn(u8, &str, f64, f64, String, String) -> Target;
        let (make, sign, limit): (Make, &str, f64) = match bound {
            Bound::AtMost(l) => (Self::at_most, "≤", l),
            Bound::AtLeast(l) => (Self::at_least, "≥", l),
        };
        make(
            scenario,
            what,
            r.median(),
            limit,
            shown,
            format!("{sign} {}", ratio(limit)),
        )
    }

    /// A target on the per-round ratios of `ours` over `theirs` (a figure and whose it
    /// is), both medians shown by `fmt`; `cause` reads a miss from the ratios.
    pub fn median_vs(
        scenario: u8,
        what: &str,
        ours: &PerRound,
        theirs: (&PerRound, &str),
        bound: Bound,
        fmt: impl Fn(f64) -> String,
        cause: impl FnOnce(&PerRound) -> String,
    ) -> Self {
        let r = PerRound::ratio(ours, theirs.0);
        let detail = format!(
            "medians {} vs {} of {}",
            fmt(ours.median()),
            fmt(theirs.0.median()),
            theirs.1
        );
        Self::median(scenario, what, &r, bound, &detail).because(cause(&r))
    }
}
