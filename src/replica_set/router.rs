//! Read/write routing over a replica set, as pure functions over what the replica-set
//! actor knows of each member. No I/O, no actix.

use std::time::Duration;

use rand::Rng;

use crate::backends::Role;
use serde::{Deserialize, Serialize};

/// How reads are spread over replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each usable replica in turn.
    #[default]
    RoundRobin,
    /// A usable replica drawn uniformly.
    Random,
    /// The usable replica with the fewest checked-out plus waiting; ties round-robin.
    LeastLoaded,
}

/// What routing needs to know of one member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Member {
    /// Its current role.
    pub role: Role,
    /// Breaker not open and last probe healthy.
    pub usable: bool,
    /// Replication lag, when known.
    pub lag: Option<Duration>,
    /// Checked-out plus waiting acquires.
    pub load: usize,
    /// Replay position (e.g. a WAL LSN), when known.
    pub replayed: Option<u64>,
    /// When it was last seen to become primary, as an increasing sequence number (0:
    /// primary by configuration, never seen promoted).
    pub primary_since: u64,
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
pub fn primary(members: &[Member]) -> Option<usize> {
    let newest = |usable_only: bool| {
        members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == Role::Primary && (m.usable || !usable_only))
            // `max_by_key` keeps the last of equals; reversed, the first listed wins ties.
            .rev()
            .max_by_key(|(_, m)| m.primary_since)
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
    /// Pick a member for a read: a usable replica by the request's strategy, else the
    /// primary if the request allows falling back (the primary is never ejected from
    /// reads), else none.
    #[cfg(test)]
    pub fn pick_read(
        &mut self,
        members: &[Member],
        req: &ReadRequest,
        rng: &mut impl Rng,
    ) -> Option<usize> {
        self.pick(members, req, rng).map(|p| p.index)
    }

    /// [`pick_read`](Self::pick_read), also saying whether a retry would have an
    /// alternative (the answer `pick_read` would give with the pick excluded), in one pass
    /// and without allocating: this runs on every replica-set read.
    pub fn pick(
        &mut self,
        members: &[Member],
        req: &ReadRequest,
        rng: &mut impl Rng,
    ) -> Option<Pick> {
        let eligible = |i: usize, m: &Member| {
            m.role == Role::Replica
                && m.usable
                && Some(i) != req.exclude
                && match (req.max_lag, m.lag) {
                    (Some(max), Some(lag)) => lag <= max,
                    (Some(_), None) => true,
                    (None, _) => true,
                }
                && match req.at_least {
                    Some(pos) => m.replayed.is_some_and(|r| r >= pos),
                    None => true,
                }
        };
        let candidates = || {
            members
                .iter()
                .enumerate()
                .filter(move |(i, m)| eligible(*i, m))
                .map(|(i, _)| i)
        };
        let count = candidates().count();
        let picked = match (count, req.strategy) {
            (0, _) => None,
            (_, Strategy::RoundRobin) => Some(self.next_of(candidates(), members.len())),
            (n, Strategy::Random) => candidates().nth(rng.random_range(0..n)),
            (_, Strategy::LeastLoaded) => {
                let least = candidates()
                    .map(|i| members[i].load)
                    .min()
                    .expect("non-empty");
                let tied = candidates().filter(|&i| members[i].load == least);
                Some(self.next_of(tied, members.len()))
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
                // Excluding it leaves the other candidates, else the primary.
                alternative: count > 1 || fallback(Some(index)).is_some(),
            }),
            None => fallback(req.exclude).map(|index| Pick {
                index,
                // No replica qualifies with or without it: only the primary again.
                alternative: false,
            }),
        }
    }

    /// The first of `sorted` at or after the cursor (wrapping), advancing the cursor past it.
    fn next_of(&mut self, sorted: impl Iterator<Item = usize>, len: usize) -> usize {
        let start = self.cursor % len.max(1);
        let mut first = None;
        let mut pick = None;
        for i in sorted {
            first.get_or_insert(i);
            if i >= start {
                pick = Some(i);
                break;
            }
        }
        let pick = pick.or(first).expect("non-empty");
        self.cursor = pick + 1;
        pick
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    fn set(n_replicas: usize) -> Vec<Member> {
        let mut v = vec![Member {
            role: Role::Primary,
            usable: true,
            lag: None,
            load: 0,
            replayed: Some(100),
            primary_since: 0,
        }];
        v.extend((0..n_replicas).map(|_| Member {
            role: Role::Replica,
            usable: true,
            lag: Some(Duration::ZERO),
            load: 0,
            replayed: Some(100),
            primary_since: 0,
        }));
        v
    }

    #[test]
    fn the_most_recently_promoted_primary_takes_the_writes() {
        let mut m = set(2);
        assert_eq!(primary(&m), Some(0));
        // r1 promoted while the old primary was down; the old one comes back still
        // calling itself primary.
        m[1].role = Role::Primary;
        m[1].primary_since = 1;
        assert_eq!(primary(&m), Some(1), "the stale primary is not written to");
        m[1].usable = false;
        assert_eq!(
            primary(&m),
            Some(0),
            "a usable primary beats an unusable one"
        );
        m[0].usable = false;
        assert_eq!(primary(&m), Some(1), "none usable: the newest");
        // Two never seen promoted (both configured): the first listed.
        let mut m = set(1);
        m[1].role = Role::Primary;
        assert_eq!(primary(&m), Some(0));
        m[1].role = Role::Replica;
        m[1].usable = false;
        m[0].role = Role::Replica;
        assert_eq!(primary(&m), None);
    }

    fn req(strategy: Strategy) -> ReadRequest {
        ReadRequest {
            strategy,
            fallback_to_primary: true,
            ..Default::default()
        }
    }

    fn counts(members: &[Member], r: &ReadRequest, n: usize) -> Vec<usize> {
        let mut router = Router::default();
        let mut rng = SmallRng::seed_from_u64(9);
        let mut c = vec![0; members.len()];
        for _ in 0..n {
            c[router.pick_read(members, r, &mut rng).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn round_robin_spreads_exactly() {
        assert_eq!(
            counts(&set(3), &req(Strategy::RoundRobin), 300),
            vec![0, 100, 100, 100]
        );
    }

    #[test]
    fn random_spreads_within_tolerance() {
        let c = counts(&set(3), &req(Strategy::Random), 3000);
        assert_eq!(c[0], 0);
        for n in &c[1..] {
            assert!((850..=1150).contains(n), "{c:?}");
        }
    }

    #[test]
    fn least_loaded_favours_the_idle_member_and_ties_rotate() {
        let mut m = set(3);
        m[1].load = 5;
        m[2].load = 0;
        m[3].load = 5;
        assert_eq!(
            counts(&m, &req(Strategy::LeastLoaded), 10),
            vec![0, 0, 10, 0]
        );
        m[2].load = 5;
        assert_eq!(
            counts(&m, &req(Strategy::LeastLoaded), 30),
            vec![0, 10, 10, 10]
        );
    }

    #[test]
    fn unusable_and_lagging_replicas_are_skipped() {
        let mut m = set(3);
        m[1].usable = false;
        m[2].lag = Some(Duration::from_secs(30));
        let r = ReadRequest {
            max_lag: Some(Duration::from_secs(5)),
            ..req(Strategy::RoundRobin)
        };
        assert_eq!(counts(&m, &r, 9), vec![0, 0, 0, 9]);
    }

    #[test]
    fn no_usable_replica_falls_back_to_primary_even_if_it_is_unhealthy() {
        let mut m = set(2);
        m[0].usable = false;
        m[1].usable = false;
        m[2].usable = false;
        assert_eq!(counts(&m, &req(Strategy::RoundRobin), 4), vec![4, 0, 0]);
        let strict = ReadRequest {
            fallback_to_primary: false,
            ..req(Strategy::RoundRobin)
        };
        assert_eq!(
            Router::default().pick_read(&m, &strict, &mut SmallRng::seed_from_u64(0)),
            None
        );
    }

    #[test]
    fn read_your_writes_needs_a_member_past_the_token() {
        let mut m = set(2);
        m[1].replayed = Some(150);
        m[2].replayed = Some(99);
        let r = ReadRequest {
            at_least: Some(120),
            ..req(Strategy::RoundRobin)
        };
        assert_eq!(counts(&m, &r, 4), vec![0, 4, 0]);
        m[1].replayed = Some(110);
        assert_eq!(
            counts(&m, &r, 2),
            vec![2, 0, 0],
            "nobody caught up: primary"
        );
    }

    #[test]
    fn retry_excludes_the_member_that_failed() {
        let m = set(2);
        let r = ReadRequest {
            exclude: Some(1),
            ..req(Strategy::RoundRobin)
        };
        assert_eq!(counts(&m, &r, 4), vec![0, 0, 4]);
        assert_eq!(primary(&m), Some(0));
    }

    #[test]
    fn a_picks_alternative_is_what_a_retry_with_the_pick_excluded_would_find() {
        let mut rng = SmallRng::seed_from_u64(11);
        for round in 0..2_000 {
            let n = 1 + round % 6;
            let members: Vec<Member> = (0..n)
                .map(|i| Member {
                    role: if i == 0 || rng.random_bool(0.2) {
                        Role::Primary
                    } else {
                        Role::Replica
                    },
                    usable: rng.random_bool(0.7),
                    lag: rng
                        .random_bool(0.8)
                        .then(|| Duration::from_millis(rng.random_range(0..300))),
                    load: rng.random_range(0..4),
                    replayed: Some(rng.random_range(90..110)),
                    primary_since: rng.random_range(0..3),
                })
                .collect();
            for strategy in [
                Strategy::RoundRobin,
                Strategy::Random,
                Strategy::LeastLoaded,
            ] {
                let req = ReadRequest {
                    strategy,
                    max_lag: Some(Duration::from_millis(200)),
                    at_least: rng.random_bool(0.3).then_some(100),
                    exclude: None,
                    fallback_to_primary: rng.random_bool(0.8),
                };
                let mut router = Router {
                    cursor: rng.random_range(0..8),
                };
                let before = router.clone();
                let pick = router.pick(&members, &req, &mut rng);
                let mut again = before.clone();
                let plain = again.pick_read(&members, &req, &mut SmallRng::seed_from_u64(0));
                if strategy != Strategy::Random {
                    assert_eq!(pick.map(|p| p.index), plain, "{members:?} {req:?}");
                }
                let Some(pick) = pick else { continue };
                let retry = ReadRequest {
                    exclude: Some(pick.index),
                    ..req
                };
                let found = router
                    .clone()
                    .pick_read(&members, &retry, &mut rng)
                    .is_some();
                // (A set of one member may retry on the same primary; a pick says no.)
                if members.len() > 1 {
                    assert_eq!(pick.alternative, found, "{members:?} {req:?} {pick:?}");
                }
            }
        }
    }
}
