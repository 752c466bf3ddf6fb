//! Read strategies: round-robin, least-loaded, random, power of two choices (the default),
//! and the per-request override.

use crate::{default_read, delta, start_set};
use poolwarden::{ReadOptions, Strategy};

#[actix::test]
async fn round_robin_spreads_exactly_and_never_touches_the_primary() {
    let fx = start_set("rr", 3, |_| {}).await;
    let before = fx.queries();
    let counts = fx.reads(300, default_read()).await;
    assert_eq!(counts, vec![0, 100, 100, 100]);
    // The servers agree: each replica ran exactly its 100 queries, the primary none.
    assert_eq!(delta(&fx.queries(), &before), vec![0, 100, 100, 100]);
    let reads: Vec<u64> = (0..4).map(|i| fx.info(i).reads).collect();
    assert_eq!(reads, vec![0, 100, 100, 100]);
}

#[actix::test]
async fn least_loaded_favours_the_idle_member_and_rotates_ties() {
    let fx = start_set("ll", 3, |c| c.strategy = Strategy::LeastLoaded).await;
    // All idle: ties rotate, so the first two reads land on r1 and r2. Hold them.
    let held_r1 = fx.set.read().await.unwrap();
    let held_r2 = fx.set.read().await.unwrap();
    assert_eq!((fx.index(held_r1.key()), fx.index(held_r2.key())), (1, 2));
    let third = fx.set.read().await.unwrap();
    assert_eq!(fx.index(third.key()), 3, "r3 was the only idle one");
    drop(third);
    // r1 and r2 carry one checkout each, r3 none: every read goes to r3.
    assert_eq!(fx.reads(20, default_read()).await, vec![0, 0, 0, 20]);
    assert_eq!(fx.info(1).in_use, 1);
    assert_eq!(fx.info(2).in_use, 1);

    // r1 comes back: r1 and r3 tie at zero and alternate exactly.
    drop(held_r1);
    assert_eq!(fx.reads(20, default_read()).await, vec![0, 10, 0, 10]);
    drop(held_r2);
    assert_eq!(fx.reads(30, default_read()).await, vec![0, 10, 10, 10]);
}

#[actix::test]
async fn random_spreads_within_tolerance() {
    let fx = start_set("random", 3, |c| c.strategy = Strategy::Random).await;
    let before = fx.queries();
    let counts = fx.reads(3000, default_read()).await;
    assert_eq!(counts[0], 0, "the primary serves no reads: {counts:?}");
    // Expected 1000 each, standard deviation about 26: 150 is almost 6 of them.
    for (i, n) in counts.iter().enumerate().skip(1) {
        assert!((850..=1150).contains(n), "replica {i}: {counts:?}");
    }
    // Not round-robin in disguise: some read repeated the member of the read before.
    let mut last = None;
    let mut repeats = 0;
    for _ in 0..60 {
        let conn = fx.set.read().await.unwrap();
        repeats += usize::from(last == Some(conn.key()));
        last = Some(conn.key());
    }
    assert!(repeats > 0, "60 random picks among 3 never repeated");
    let d = delta(&fx.queries(), &before);
    assert_eq!(d[1..].iter().sum::<u64>(), 3000);
}

#[actix::test]
async fn the_strategy_can_be_overridden_per_request() {
    let fx = start_set("override", 3, |_| {}).await;
    let held_r1 = fx.set.read().await.unwrap();
    let held_r2 = fx.set.read().await.unwrap();
    assert_eq!((fx.index(held_r1.key()), fx.index(held_r2.key())), (1, 2));
    let least = ReadOptions {
        strategy: Some(Strategy::LeastLoaded),
        ..ReadOptions::default()
    };
    // Overridden: least-loaded picks the only idle replica every time.
    assert_eq!(fx.reads(9, least).await, vec![0, 0, 0, 9]);
    // The set's own round-robin ignores load and keeps rotating.
    assert_eq!(fx.reads(9, default_read()).await, vec![0, 3, 3, 3]);
    // Random, per request, on a round-robin set.
    let random = ReadOptions {
        strategy: Some(Strategy::Random),
        ..ReadOptions::default()
    };
    let counts = fx.reads(1500, random).await;
    assert_eq!(counts[0], 0);
    for n in &counts[1..] {
        assert!((400..=600).contains(n), "{counts:?}");
    }
    drop((held_r1, held_r2));
}

#[actix::test]
async fn power_of_two_is_the_default_and_never_picks_the_busier_of_its_draw() {
    let fx = start_set("p2c", 3, |c| c.strategy = Strategy::default()).await;
    assert_eq!(fx.config.strategy, Strategy::PowerOfTwo);
    // r1 carries two checkouts (taken in turn: power of two would not give them to it):
    // drawn with either idle replica, it loses every time.
    let in_turn = ReadOptions {
        strategy: Some(Strategy::RoundRobin),
        ..ReadOptions::default()
    };
    let mut held = Vec::new();
    for _ in 0..6 {
        let conn = fx.set.read_with(in_turn).await.unwrap();
        if fx.index(conn.key()) == 1 {
            held.push(conn);
        }
    }
    assert_eq!(fx.info(1).in_use, 2);
    let counts = fx.reads(3000, default_read()).await;
    assert_eq!(&counts[..2], &[0, 0], "{counts:?}");
    // r2 and r3 tie at zero: the first drawn of a pair, half each.
    for n in &counts[2..] {
        assert!((1350..=1650).contains(n), "{counts:?}");
    }
    drop(held);
    // All idle again: the three share (a third each, within tolerance).
    let counts = fx.reads(3000, default_read()).await;
    assert_eq!(counts[0], 0);
    for n in &counts[1..] {
        assert!((850..=1150).contains(n), "{counts:?}");
    }
}
