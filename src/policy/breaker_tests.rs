//! Unit tests of the circuit breaker, on paused tokio time.

use super::*;
use crate::error::BackendErrorKind;
use rand::{rngs::SmallRng, SeedableRng};

fn err() -> BackendError {
    BackendError::new(BackendErrorKind::Connect, "connection refused")
}

fn breaker() -> (CircuitBreaker, SmallRng) {
    let cfg = BreakerConfig {
        failure_threshold: 3,
        success_threshold: 2,
        open_for: Duration::from_secs(1),
        // Doubling from the first trip, as these tests check.
        grow_after: Duration::ZERO,
        max_open_for: Duration::from_secs(8),
    };
    (
        CircuitBreaker::new(cfg, Instant::now()),
        SmallRng::seed_from_u64(3),
    )
}

#[tokio::test(start_paused = true)]
async fn opens_after_threshold_consecutive_failures_only() {
    let (mut b, mut rng) = breaker();
    let now = Instant::now();
    assert!(b.on_failure(now, err(), &mut rng).is_none());
    assert!(b.on_failure(now, err(), &mut rng).is_none());
    b.on_success(now); // resets the count
    assert!(b.on_failure(now, err(), &mut rng).is_none());
    assert!(b.on_failure(now, err(), &mut rng).is_none());
    let change = b
        .on_failure(now, err(), &mut rng)
        .expect("trips on the third");
    assert_eq!(
        (change.from, change.to),
        (BreakerState::Closed, BreakerState::Open)
    );
    assert!(
        change.reason.contains("connection refused"),
        "{}",
        change.reason
    );
    assert_eq!(b.last_error().unwrap().kind(), BackendErrorKind::Connect);
    match b.admit(now) {
        Admission::Rejected { retry_at } => {
            assert!(
                retry_at >= now + Duration::from_millis(500)
                    && retry_at <= now + Duration::from_secs(1)
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_one_trial_and_closes_after_successes() {
    let (mut b, mut rng) = breaker();
    for _ in 0..3 {
        b.on_failure(Instant::now(), err(), &mut rng);
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    let now = Instant::now();
    let Admission::Trial(Some(change)) = b.admit(now) else {
        panic!("expected a trial")
    };
    assert_eq!(change.to, BreakerState::HalfOpen);
    assert!(
        matches!(b.admit(now), Admission::Rejected { .. }),
        "one trial at a time"
    );
    assert!(b.on_success(now).is_none(), "needs two successes");
    assert_eq!(b.admit(now), Admission::Trial(None));
    let closed = b.on_success(now).expect("closes");
    assert_eq!(
        (closed.from, closed.to),
        (BreakerState::HalfOpen, BreakerState::Closed)
    );
    assert_eq!(b.admit(now), Admission::Allowed);
    assert_eq!(b.trips(), 0);
}

#[tokio::test(start_paused = true)]
async fn failed_trial_reopens_with_growing_capped_open_time() {
    let (mut b, mut rng) = breaker();
    for _ in 0..3 {
        b.on_failure(Instant::now(), err(), &mut rng);
    }
    let mut ceilings = vec![];
    for _ in 0..6 {
        let opened_at = Instant::now();
        let wait = b.retry_at() - opened_at;
        ceilings.push(wait);
        tokio::time::advance(wait).await;
        assert!(matches!(b.admit(Instant::now()), Admission::Trial(_)));
        let change = b.on_failure(Instant::now(), err(), &mut rng).unwrap();
        assert_eq!(
            (change.from, change.to),
            (BreakerState::HalfOpen, BreakerState::Open)
        );
    }
    // Ceilings 1, 2, 4, 8, 8, 8 s; each wait within [ceiling/2, ceiling].
    let caps = [1, 2, 4, 8, 8, 8];
    for (w, cap) in ceilings.iter().zip(caps) {
        let cap = Duration::from_secs(cap);
        assert!(*w >= cap / 2 && *w <= cap, "{w:?} vs {cap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn abandoned_trial_frees_the_slot() {
    let (mut b, mut rng) = breaker();
    for _ in 0..3 {
        b.on_failure(Instant::now(), err(), &mut rng);
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(matches!(b.admit(Instant::now()), Admission::Trial(_)));
    let first = b.current_trial();
    assert!(b.trial_abandoned(first));
    assert_eq!(b.admit(Instant::now()), Admission::Trial(None));
    // The first trial's end, reported late, does not end the second one.
    assert!(!b.trial_abandoned(first));
    assert!(matches!(
        b.admit(Instant::now()),
        Admission::Rejected { .. }
    ));
    // A trial whose outcome was reported is over already.
    let second = b.current_trial();
    assert_ne!(second, first);
    assert_eq!(b.on_success(Instant::now()), None, "one success of two");
    assert!(!b.trial_abandoned(second));
}

#[test]
fn config_errors_name_the_field() {
    let bad = BreakerConfig {
        failure_threshold: 0,
        ..Default::default()
    };
    assert_eq!(
        bad.validate().unwrap_err().field,
        "breaker.failure_threshold"
    );
    let bad = BreakerConfig {
        max_open_for: Duration::from_millis(1),
        ..Default::default()
    };
    assert_eq!(bad.validate().unwrap_err().field, "breaker.max_open_for");
    BreakerConfig::default().validate().unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_open_time_stays_short_while_the_outage_is_young_then_doubles() {
    let cfg = BreakerConfig {
        failure_threshold: 1,
        open_for: Duration::from_millis(100),
        grow_after: Duration::from_secs(1),
        max_open_for: Duration::from_millis(800),
        ..BreakerConfig::default()
    };
    let start = Instant::now();
    let mut b = CircuitBreaker::new(cfg, start);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut now = start;
    let mut opens = Vec::new();
    b.on_failure(now, err(), &mut rng).expect("opens");
    for _ in 0..20 {
        let open = b.retry_at() - now;
        opens.push((now - start, open));
        now = b.retry_at();
        assert!(matches!(b.admit(now), Admission::Trial(_)));
        b.on_failure(now, err(), &mut rng)
            .expect("the trial failed: open again");
    }
    for (age, open) in &opens {
        let ceiling = if *age < Duration::from_secs(1) {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(800)
        };
        assert!(*open <= ceiling, "{age:?}: open {open:?}");
        assert!(*open >= Duration::from_millis(50), "{age:?}: open {open:?}");
    }
    let young: Vec<_> = opens
        .iter()
        .filter(|(age, _)| *age < Duration::from_secs(1))
        .collect();
    assert!(
        young.len() >= 10,
        "trials every 50-100ms at first: {opens:?}"
    );
    let (_, last) = opens.last().unwrap();
    assert!(
        *last >= Duration::from_millis(400),
        "grown to the cap: {opens:?}"
    );
    // A success closes it and the next outage starts short again.
    assert!(matches!(b.admit(b.retry_at()), Admission::Trial(_)));
    b.on_success(b.retry_at());
    assert!(matches!(b.admit(b.retry_at()), Admission::Trial(_)));
    b.on_success(b.retry_at());
    assert_eq!(b.state(), BreakerState::Closed);
    let now = b.retry_at() + Duration::from_secs(5);
    for _ in 0..1 {
        b.on_failure(now, err(), &mut rng).expect("opens");
    }
    assert!(b.retry_at() - now <= Duration::from_millis(100));
}

#[test]
fn refusing_says_until_when_only_while_open() {
    let (mut b, mut rng) = breaker();
    let now = Instant::now();
    assert_eq!(b.refusing(now), None);
    for _ in 0..3 {
        b.on_failure(now, err(), &mut rng);
    }
    let until = b.refusing(now).expect("open");
    assert_eq!(until, b.retry_at());
    assert_eq!(b.refusing(until), None, "the trial may go now");
}
