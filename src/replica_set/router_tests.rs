//! The router's unit and property tests.

use super::*;
use crate::replica_set::draws::WARM;
use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, proptest, Just, ProptestConfig};
use proptest::strategy::Strategy as _;
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// A member's view as plain data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Member {
    /// See [`View::role`].
    pub role: Role,
    /// See [`View::usable`].
    pub usable: bool,
    /// See [`View::lag`].
    pub lag: Option<Duration>,
    /// See [`View::load`].
    pub load: usize,
    /// See [`View::replayed`].
    pub replayed: Option<u64>,
    /// See [`View::primary_since`].
    pub primary_since: u64,
    /// See [`View::warming`].
    pub warming: Option<u16>,
}

impl View for Member {
    fn role(&self) -> Role {
        self.role
    }
    fn usable(&self) -> bool {
        self.usable
    }
    fn lag(&self) -> Option<Duration> {
        self.lag
    }
    fn load(&self) -> usize {
        self.load
    }
    fn replayed(&self) -> Option<u64> {
        self.replayed
    }
    fn primary_since(&self) -> u64 {
        self.primary_since
    }
    fn warming(&self) -> Option<u16> {
        self.warming
    }
}

const STRATEGIES: [Strategy; 4] = [
    Strategy::RoundRobin,
    Strategy::Random,
    Strategy::LeastLoaded,
    Strategy::PowerOfTwo,
];

fn set(n_replicas: usize) -> Vec<Member> {
    let mut v = vec![Member {
        role: Role::Primary,
        usable: true,
        lag: None,
        load: 0,
        replayed: Some(100),
        primary_since: 0,
        warming: None,
    }];
    v.extend((0..n_replicas).map(|_| Member {
        role: Role::Replica,
        usable: true,
        lag: Some(Duration::ZERO),
        load: 0,
        replayed: Some(100),
        primary_since: 0,
        warming: None,
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
                warming: rng.random_bool(0.2).then(|| rng.random_range(0..=WARM)),
            })
            .collect();
        for strategy in STRATEGIES {
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
            let warming = members.iter().any(|m| m.warming.is_some());
            if !matches!(strategy, Strategy::Random | Strategy::PowerOfTwo) && !warming {
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

#[test]
fn power_of_two_takes_the_less_loaded_of_two_and_spreads_equal_loads() {
    // Two replicas: both are drawn every time, so the lighter one always wins.
    let mut m = set(2);
    m[1].load = 3;
    m[2].load = 2;
    assert_eq!(counts(&m, &req(Strategy::PowerOfTwo), 100), vec![0, 0, 100]);
    // Equal loads: the first drawn, which is uniform.
    let c = counts(&set(3), &req(Strategy::PowerOfTwo), 3000);
    assert_eq!(c[0], 0);
    for n in &c[1..] {
        assert!((850..=1150).contains(n), "{c:?}");
    }
    // Three replicas, one busy: it is never the lighter of a pair, the idle two share.
    let mut m = set(3);
    m[2].load = 8;
    let c = counts(&m, &req(Strategy::PowerOfTwo), 3000);
    assert_eq!(c[2], 0, "{c:?}");
    assert!((1350..=1650).contains(&c[1]), "{c:?}");
    // One candidate: it, with no draw over an empty range.
    let mut m = set(3);
    m[1].usable = false;
    m[3].usable = false;
    assert_eq!(
        counts(&m, &req(Strategy::PowerOfTwo), 10),
        vec![0, 0, 10, 0]
    );
}

#[test]
fn a_warming_replica_takes_part_in_its_share_of_reads() {
    for strategy in STRATEGIES {
        let mut m = set(3);
        m[3].warming = Some(WARM / 4);
        let c = counts(&m, &req(strategy), 12_000);
        assert_eq!(c[0], 0, "{strategy:?}: {c:?}");
        // Its due is 4,000. Drawn among the three, it takes part in a quarter of the reads
        // and wins a third of those: 1,000. Taken in turn (least-loaded with equal loads
        // too), it takes a quarter of its turns, and a skipped turn shortens the round
        // (r1, r2, then r1 again): 1/4 of the reads per round of 2 + 1/4, i.e. 1,333.
        let expected = match strategy {
            Strategy::RoundRobin | Strategy::LeastLoaded => 1_333,
            Strategy::Random | Strategy::PowerOfTwo => 1_000,
        };
        assert!(
            c[3].abs_diff(expected) <= expected / 7,
            "{strategy:?}: {c:?}"
        );
        assert_eq!(c.iter().sum::<usize>(), 12_000);
    }
}

#[test]
fn warming_replicas_still_serve_when_they_are_all_there_is() {
    for strategy in STRATEGIES {
        let mut m = set(2);
        m[1].warming = Some(0);
        m[2].warming = Some(0);
        let c = counts(&m, &req(strategy), 100);
        assert_eq!(
            c,
            vec![0, c[1], c[2]],
            "{strategy:?}: no read went to the primary"
        );
        assert!(c[1] > 0 && c[2] > 0, "{strategy:?}: {c:?}");
        let strict = ReadRequest {
            fallback_to_primary: false,
            ..req(strategy)
        };
        let mut router = Router::default();
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..10 {
            let pick = router.pick_read(&m, &strict, &mut rng);
            assert!(matches!(pick, Some(1 | 2)), "{strategy:?}: {pick:?}");
        }
    }
}

fn arb_member() -> impl proptest::strategy::Strategy<Value = Member> {
    (
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        prop::option::of(0u64..300),
        0usize..6,
        prop::option::of(95u64..105),
        0u64..3,
        prop::option::weighted(0.3, 0..=WARM),
    )
        .prop_map(
            |(replica, usable, lag, load, replayed, primary_since, warming)| Member {
                role: if replica {
                    Role::Replica
                } else {
                    Role::Primary
                },
                usable,
                lag: lag.map(Duration::from_millis),
                load,
                replayed,
                primary_since,
                warming,
            },
        )
}

fn arb_request(len: usize) -> impl proptest::strategy::Strategy<Value = ReadRequest> {
    (
        0usize..STRATEGIES.len(),
        prop::option::of(0u64..300),
        prop::option::of(95u64..105),
        prop::option::of(0..len),
        any::<bool>(),
    )
        .prop_map(
            |(strategy, max_lag, at_least, exclude, fallback_to_primary)| ReadRequest {
                strategy: STRATEGIES[strategy],
                max_lag: max_lag.map(Duration::from_millis),
                at_least,
                exclude,
                fallback_to_primary,
            },
        )
}

/// A replica the request may read from: the router's rule, written out again.
fn qualifies(i: usize, m: &Member, r: &ReadRequest) -> bool {
    m.role == Role::Replica
        && m.usable
        && r.exclude != Some(i)
        && !matches!((r.max_lag, m.lag), (Some(max), Some(lag)) if lag > max)
        && r.at_least
            .is_none_or(|pos| m.replayed.is_some_and(|p| p >= pos))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Every strategy, members warming or not: a read goes to a replica that qualifies when
    /// there is one (never an unusable, excluded, lagging or behind one), else to the
    /// primary when the request allows it, else nowhere.
    #[test]
    fn a_read_goes_to_a_qualifying_replica_when_there_is_one(
        (members, r) in prop::collection::vec(arb_member(), 1..7)
            .prop_flat_map(|m| { let n = m.len(); (Just(m), arb_request(n)) }),
        seed in any::<u64>(),
        cursor in 0usize..8,
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let pick = Router::at(cursor).pick_read(&members, &r, &mut rng);
        let any = members.iter().enumerate().any(|(i, m)| qualifies(i, m, &r));
        match pick {
            Some(i) if any => prop_assert!(qualifies(i, &members[i], &r), "{} {:?} {:?}", i, members, r),
            Some(i) => {
                prop_assert!(r.fallback_to_primary);
                prop_assert_eq!(Some(i), primary(&members));
            }
            None => {
                prop_assert!(!any);
                let p = primary(&members);
                prop_assert!(!r.fallback_to_primary || p.is_none() || (p == r.exclude && members.len() > 1));
            }
        }
    }

    /// With two qualifying replicas, power of two draws both and never takes the strictly
    /// more loaded one.
    #[test]
    fn power_of_two_never_takes_the_busier_of_two(
        loads in (0usize..10, 0usize..10),
        seed in any::<u64>(),
        others in prop::collection::vec(arb_member(), 0..4),
    ) {
        let mut members = set(2);
        members[1].load = loads.0;
        members[2].load = loads.1;
        // More members that cannot take a read.
        members.extend(others.into_iter().map(|m| Member { usable: false, ..m }));
        let mut rng = SmallRng::seed_from_u64(seed);
        let i = Router::default()
            .pick_read(&members, &req(Strategy::PowerOfTwo), &mut rng)
            .expect("a replica qualifies");
        prop_assert!(i == 1 || i == 2, "{}", i);
        prop_assert!(members[i].load <= loads.0.min(loads.1), "{} {:?}", i, loads);
    }
}
