//! Read/write routing over a replica set, as pure functions over what the replica-set
//! actor knows of each member. No I/O, no actix.
//!
//! A member is seen through [`View`], asked lazily: a pick reads only what it needs (the
//! role and usability of each member, lag and position only if the request limits them,
//! load only for the load-aware strategies and only of candidates), since it runs on every
//! replica-set read. The tests route over plain data (`router_tests.rs`).

use std::time::Duration;

use rand::RngCore;

use super::candidates::Candidates;
use super::draws::{below, coin};
pub use super::strategy::Strategy;
use crate::backends::Role;

/// What routing asks of a member.
pub trait View {
    /// Its current role.
    fn role(&self) -> Role;
    /// Routed to: reachable at the last probe, breaker not open, healthy.
    fn usable(&self) -> bool;
    /// Replication lag, when known.
    fn lag(&self) -> Option<Duration>;
    /// Checked-out plus waiting acquires.
    fn load(&self) -> usize;
    /// Replay position (e.g. a WAL LSN), when known.
    fn replayed(&self) -> Option<u64>;
    /// When it was last seen to become primary, as an increasing sequence number (0:
    /// primary by configuration, never seen promoted).
    fn primary_since(&self) -> u64;
    /// Slow start: while a readmitted or added replica warms up, the chance (in
    /// thousandths) that it takes part in a read; `None` once warm (every read). Asked
    /// only of a usable replica that may serve the read.
    fn warming(&self) -> Option<u16>;
}

/// What a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadRequest {
    /// Spread strategy.
    pub strategy: Strategy,
    /// Skip replicas lagging more than this.
    pub max_lag: Option<Duration>,
    /// Read-your-writes: only members that replayed at least this far.
    pub at_least: Option<u64>,
    /// A member not to pick (the one whose connect just failed).
    pub exclude: Option<usize>,
    /// Fall back to the primary when no replica is usable.
    pub fallback_to_primary: bool,
}

/// The routing state: just a round-robin cursor.
#[derive(Debug, Clone, Default)]
pub struct Router {
    cursor: usize,
}

/// The index of the primary: among the members that say they are primary, the usable
/// one most recently seen promoted (ties: the first listed), else the most recently
/// promoted of any. After a failover the old primary may come back still calling itself
/// primary before anyone demotes it: it is the stale one, and writing to it would split
/// the data.
pub fn primary(members: &[impl View]) -> Option<usize> {
    let newest = |usable_only: bool| {
        members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role() == Role::Primary && (!usable_only || m.usable()))
            // `max_by_key` keeps the last of equals; reversed, the first listed wins ties.
            .rev()
            .max_by_key(|(_, m)| m.primary_since())
            .map(|(i, _)| i)
    };
    newest(true).or_else(|| newest(false))
}

/// A read's pick, and whether a retry after it fails would have somewhere else to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// The member to read from.
    pub index: usize,
    /// Another member could serve the same request with this one excluded.
    pub alternative: bool,
}

impl Router {
    /// A router whose round-robin turn is at `cursor`.
    pub fn at(cursor: usize) -> Self {
        Self { cursor }
    }

    /// Where the round-robin turn is.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Pick a member for a read: a usable replica by the request's strategy, else the
    /// primary if the request allows falling back (the primary is never ejected from
    /// reads), else none.
    #[cfg(test)]
    pub fn pick_read(
        &mut self,
        members: &[impl View],
        req: &ReadRequest,
        rng: &mut impl RngCore,
    ) -> Option<usize> {
        self.pick(members, req, rng).map(|p| p.index)
    }

    /// [`pick_read`](Self::pick_read), also saying whether a retry would have an
    /// alternative (the answer `pick_read` would give with the pick excluded): one pass
    /// over the members, no allocation for up to 64 of them. `rng` is drawn from only by
    /// the random strategies and while a member warms up, once a read.
    ///
    /// Slow start: a warming member takes part in this read with the chance its
    /// `warming` says; the others pick as if it were not there. It only moves reads
    /// between replicas: when every candidate would be left out, none is.
    pub fn pick<M: View>(
        &mut self,
        members: &[M],
        req: &ReadRequest,
        rng: &mut impl RngCore,
    ) -> Option<Pick> {
        let mut all = Candidates::new(members.len());
        let mut warming = false;
        for (i, m) in members.iter().enumerate() {
            if eligible(i, m, req) {
                all.insert(i);
                warming |= m.warming().is_some();
            }
        }
        let count = all.len();
        let candidates = if warming {
            ramped(members, all, rng.next_u64())
        } else {
            all
        };
        let picked = match (candidates.len(), req.strategy) {
            (0, _) => None,
            (_, Strategy::RoundRobin) => self.next_of(&candidates, members.len()),
            (n, Strategy::Random) => candidates.nth(below(rng.next_u32(), n)),
            (_, Strategy::LeastLoaded) => {
                let least = candidates.iter().map(|i| members[i].load()).min()?;
                let mut tied = Candidates::new(members.len());
                for i in candidates.iter().filter(|&i| members[i].load() == least) {
                    tied.insert(i);
                }
                self.next_of(&tied, members.len())
            }
            (1, Strategy::PowerOfTwo) => candidates.nth(0),
            (n, Strategy::PowerOfTwo) => {
                // Two distinct draws from one 64-bit word.
                let r = rng.next_u64();
                let a = below(r as u32, n);
                let b = below((r >> 32) as u32, n - 1);
                let b = if b >= a { b + 1 } else { b };
                let (first, second) = (candidates.nth(a)?, candidates.nth(b)?);
                Some(if members[second].load() < members[first].load() {
                    second
                } else {
                    first
                })
            }
        };
        let fallback = |exclude: Option<usize>| {
            if req.fallback_to_primary {
                primary(members).filter(|&p| Some(p) != exclude || members.len() == 1)
            } else {
                None
            }
        };
        match picked {
            Some(index) => Some(Pick {
                index,
                // Excluding it leaves the other candidates (warming or not: a retry whose
                // coins leave every one out takes them all), else the primary.
                alternative: count > 1 || fallback(Some(index)).is_some(),
            }),
            None => fallback(req.exclude).map(|index| Pick {
                index,
                // No replica qualifies with or without it: only the primary again.
                alternative: false,
            }),
        }
    }

    /// The first of `candidates` at or after the cursor (wrapping), advancing the cursor
    /// past it.
    fn next_of(&mut self, candidates: &Candidates, len: usize) -> Option<usize> {
        let pick = candidates.first_from(self.cursor % len.max(1))?;
        self.cursor = pick + 1;
        Some(pick)
    }
}

/// Whether member `i` may serve `req` at all: a usable replica, not excluded, within the
/// lag limit and past the causality token (the cheapest questions first).
fn eligible(i: usize, m: &impl View, req: &ReadRequest) -> bool {
    m.role() == Role::Replica
        && Some(i) != req.exclude
        && m.usable()
        && match req.max_lag {
            Some(max) => m.lag().is_none_or(|lag| lag <= max),
            None => true,
        }
        && match req.at_least {
            Some(pos) => m.replayed().is_some_and(|r| r >= pos),
            None => true,
        }
}

/// Of `all`, those whose coin (from `seed`) lets them take part: every warm one, each
/// warming one with its chance; all of them if that leaves none.
#[cold]
fn ramped(members: &[impl View], all: Candidates, seed: u64) -> Candidates {
    let mut taking = Candidates::new(members.len());
    for i in all.iter() {
        if members[i]
            .warming()
            .is_none_or(|share| coin(seed, i, share))
        {
            taking.insert(i);
        }
    }
    if taking.is_empty() {
        all
    } else {
        taking
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
