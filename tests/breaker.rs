//! The circuit breaker end to end on the simulated backend: what opens it (failed fresh
//! connects, a fresh connection failing its probe) and what does not (connections returned
//! broken, failed probes of old connections, cancelled acquires), how an open breaker
//! answers (`CircuitOpen` at once to a caller whose deadline comes before the next trial,
//! a wait for the trial otherwise, idle connections still served after a probe), the
//! half-open trial (one at a time, `success_threshold` successes close it, a failure
//! re-opens it for longer, up to the cap), background probes healing it with no traffic,
//! how fast a down server is noticed, and the `BreakerTransition` events a subscriber actor
//! receives.

mod support_pool;

use std::time::Duration;

use actix::prelude::*;
use poolwarden::backends::sim::SimBehavior;
use poolwarden::messages::BreakerTransition;
use poolwarden::{
    BackendErrorKind, BreakerConfig, BreakerState, Error, HealthStatus, Phase, PoolConfig,
};
use support_pool::*;
use tokio::time::Instant;

use BreakerState::{Closed, HalfOpen, Open};

// ----- a subscriber ------------------------------------------------------------------------

/// Keeps every breaker transition it is sent, in order.
#[derive(Default)]
struct Recorder {
    seen: Vec<BreakerTransition>,
}

impl Actor for Recorder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Events are offered with `try_send`: a test must never lose one to a full mailbox.
        ctx.set_mailbox_capacity(10_000);
    }
}

impl Handler<BreakerTransition> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: BreakerTransition, _: &mut Self::Context) {
        self.seen.push(msg);
    }
}

/// Everything recorded so far. Queued behind the events already offered, so it sees them.
#[derive(Message)]
#[rtype(result = "Vec<BreakerTransition>")]
struct Seen;

impl Handler<Seen> for Recorder {
    type Result = MessageResult<Seen>;
    fn handle(&mut self, _: Seen, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.seen.clone())
    }
}

async fn seen(recorder: &Addr<Recorder>) -> Vec<BreakerTransition> {
    recorder.send(Seen).await.expect("the recorder runs")
}

fn moves(events: &[BreakerTransition]) -> Vec<(BreakerState, BreakerState)> {
    events.iter().map(|e| (e.from, e.to)).collect()
}

// ----- setup -------------------------------------------------------------------------------

/// 3 consecutive failures open it, 2 successful trials close it, open 1s at first
/// (doubling up to 4s).
fn breaker() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 3,
        success_threshold: 2,
        open_for: secs(1),
        grow_after: std::time::Duration::ZERO,
        max_open_for: secs(4),
    }
}

fn config() -> PoolConfig {
    PoolConfig {
        max_size: 4,
        acquire_timeout: secs(5),
        breaker: breaker(),
        ..quiet_config()
    }
}

/// How long a connect takes in these tests: a refused connect fails after it too.
const CONNECT: Duration = Duration::from_millis(50);

fn slow_connects() -> SimBehavior {
    SimBehavior {
        connect_latency: CONNECT,
        ..SimBehavior::default()
    }
}

/// A fixture and a recorder subscribed to the supervisor's breaker events.
async fn setup(name: &str, config: PoolConfig, behavior: SimBehavior) -> (Fixture, Addr<Recorder>) {
    let f = start(name, config, behavior).await;
    let recorder = Recorder::default().start();
    f.sup
        .subscribe(recorder.clone().recipient())
        .await
        .expect("subscribed");
    (f, recorder)
}

impl Fixture {
    /// One acquire that makes exactly one connect attempt, which the down server refuses:
    /// its budget is the connect latency, so no retry fits. Answers when the attempt failed.
    async fn one_refused_connect(&self) -> Instant {
        let attempts = self.server.connect_attempts();
        let err = self.pool.acquire_timeout(CONNECT).await.unwrap_err();
        match &err {
            Error::Timeout {
                phase: Phase::Connect,
                last_error: Some(e),
                ..
            } => assert!(e.to_string().contains("connection refused"), "{e}"),
            other => panic!("expected a refused connect, got {other:?}"),
        }
        assert_eq!(
            self.server.connect_attempts(),
            attempts + 1,
            "one attempt per acquire"
        );
        Instant::now()
    }

    /// Trip the breaker with `breaker().failure_threshold` refused connects (the server
    /// is taken down). Answers when it opened.
    async fn trip(&self) -> Instant {
        self.server.go_down();
        let mut at = Instant::now();
        for _ in 0..breaker().failure_threshold {
            at = self.one_refused_connect().await;
        }
        assert_eq!(self.pool.stats().breaker, Open);
        at
    }

    /// An acquire refused by the open breaker: its deadline (1ms) comes before the next
    /// trial, so it returns at once. Answers its `retry_in`.
    async fn refused(&self) -> Duration {
        let t = Instant::now();
        let attempts = self.server.connect_attempts();
        let err = self.pool.acquire_timeout(ms(1)).await.unwrap_err();
        assert_eq!(
            t.elapsed(),
            Duration::ZERO,
            "an open breaker answers at once"
        );
        assert_eq!(
            self.server.connect_attempts(),
            attempts,
            "the server is left alone"
        );
        match err {
            Error::CircuitOpen { key, retry_in, .. } => {
                assert_eq!(key, self.pool.key());
                retry_in
            }
            other => panic!("expected CircuitOpen, got {other:?}"),
        }
    }
}

// ----- what opens it -----------------------------------------------------------------------

#[actix::test]
async fn consecutive_connect_failures_open_the_breaker_at_the_threshold() {
    let (f, recorder) = setup("connectfail", config(), slow_connects()).await;
    f.server.go_down();
    for _ in 0..2 {
        f.one_refused_connect().await;
    }
    assert_eq!(f.pool.stats().breaker, Closed, "2 of 3 failures");

    // A success in between starts the count again.
    f.server.come_up();
    drop(f.pool.acquire().await.unwrap());
    f.server.go_down();
    for _ in 0..2 {
        f.one_refused_connect().await;
    }
    assert_eq!(f.pool.stats().breaker, Closed, "not consecutive");
    assert!(seen(&recorder).await.is_empty());

    let opened = f.one_refused_connect().await;
    let s = f.pool.stats();
    assert_eq!(s.breaker, Open, "{s:?}");
    assert_eq!(s.connect_errors, 5);

    let events = seen(&recorder).await;
    assert_eq!(moves(&events), [(Closed, Open)]);
    let e = &events[0];
    assert_eq!(e.key, f.pool.key());
    assert_eq!(e.at, opened);
    assert!(
        e.reason.contains("3 consecutive failures") && e.reason.contains("connection refused"),
        "{}",
        e.reason
    );
}

/// A probe that fails on an old connection condemns the connection; a fresh connection
/// failing its probe too condemns the endpoint: the server accepts connections but every
/// statement fails.
#[actix::test]
async fn fresh_connections_failing_their_probe_open_the_breaker() {
    let (f, recorder) = setup("probefail", config(), SimBehavior::default()).await;
    let held: Vec<_> = futures::future::join_all((0..3).map(|_| f.pool.acquire())).await;
    drop(held);
    assert_eq!(f.pool.stats().idle, 3);

    f.server.set_behavior(SimBehavior {
        query_failure_rate: 1.0,
        ..SimBehavior::default()
    });
    for _ in 0..2 {
        let r = f.sup.health().await.unwrap();
        assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
        assert!(
            r.unhealthy[0].1.contains("simulated query failure"),
            "{r:?}"
        );
    }
    assert_eq!(f.pool.stats().breaker, Closed);
    let r = f.sup.health().await.unwrap();
    assert_eq!(r.status, HealthStatus::Unhealthy);
    let s = f.pool.stats();
    assert_eq!(s.breaker, Open, "{s:?}");
    // Each health check closed an old connection and the fresh one that confirmed it.
    assert_eq!((s.created, s.closed, s.live), (6, 6, 0), "{s:?}");

    let events = seen(&recorder).await;
    assert_eq!(moves(&events), [(Closed, Open)]);
    assert!(
        events[0].reason.contains("3 consecutive failures")
            && events[0].reason.contains("simulated query failure"),
        "{}",
        events[0].reason
    );
    let err = f.pool.acquire_timeout(ms(1)).await.unwrap_err();
    match err {
        Error::CircuitOpen {
            last_error: Some(e),
            ..
        } => assert_eq!(e.kind(), BackendErrorKind::Query),
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
}

/// Old connections failing their probe while fresh ones work: the connections were at
/// fault (a restart, a proxy that dropped them), not the server.
#[actix::test]
async fn old_connections_failing_their_probe_do_not_count_against_the_server() {
    let (f, recorder) = setup("oldfail", config(), SimBehavior::default()).await;
    let held: Vec<_> = futures::future::join_all((0..3).map(|_| f.pool.acquire())).await;
    drop(held);
    for _ in 0..breaker().failure_threshold + 1 {
        f.server.fail_next_probes(1);
        let r = f.sup.health().await.unwrap();
        assert_eq!(r.status, HealthStatus::Healthy, "the server is fine: {r:?}");
    }
    assert_eq!(f.pool.stats().breaker, Closed);
    assert!(seen(&recorder).await.is_empty());
    f.assert_quiescent();
}

#[actix::test]
async fn connections_returned_broken_do_not_open_the_breaker_and_idle_ones_are_probed() {
    let (f, recorder) = setup("killed", config(), SimBehavior::default()).await;
    let held = f.hold(4).await;
    // Two go back to the idle list, used a moment ago (well inside the 500ms bypass).
    let mut held = held.into_iter();
    drop(held.next());
    drop(held.next());
    let held: Vec<_> = held.collect();
    settle_for(ms(10)).await;
    // The server kills the checked-out ones (it stays up); they come back broken.
    for conn in &held {
        assert!(f.server.kill_connection(conn.id()));
    }
    drop(held);
    let s = f.pool.stats();
    assert_eq!(s.breaker, Closed, "{s:?}");
    assert_eq!((s.live, s.idle, s.in_use, s.closed), (2, 2, 0, 2), "{s:?}");
    assert!(seen(&recorder).await.is_empty());

    // The idle ones may share the dead ones' fate: each is probed before it is handed
    // out, inside the bypass window though it is.
    let queries = f.server.queries();
    drop(f.pool.acquire().await.unwrap());
    assert_eq!(f.server.queries(), queries + 1, "probed");
    // Returned after the break, it is trusted again.
    drop(f.pool.acquire().await.unwrap());
    assert_eq!(f.server.queries(), queries + 1, "not probed twice");
    assert_eq!(f.pool.stats().breaker, Closed);
    f.assert_quiescent();
}

/// A connect cut short by the acquirer's own deadline (shorter than the connect timeout)
/// says nothing against the server: it does not count toward opening the breaker.
#[actix::test]
async fn connects_cut_short_by_the_callers_deadline_do_not_count() {
    let (f, recorder) = setup("impatient", config(), slow_connects()).await;
    for _ in 0..2 * breaker().failure_threshold {
        match f.pool.acquire_timeout(CONNECT / 2).await {
            Err(Error::Timeout {
                phase: Phase::Connect,
                last_error: Some(e),
                ..
            }) => assert!(e.to_string().contains("cut short"), "{e}"),
            other => panic!("expected a connect timeout, got {other:?}"),
        }
    }
    assert_eq!(f.pool.stats().breaker, Closed);
    assert!(seen(&recorder).await.is_empty());
    assert!(f.pool.acquire().await.is_ok(), "a patient acquire connects");
}

/// Waiters queued for a slot when the server dies do not storm it: once failed connects
/// open the breaker only its trials connect, and each waiter ends by its deadline with the
/// last connect error (or `CircuitOpen` at once when the next trial is past its deadline).
#[actix::test]
async fn waiters_do_not_hammer_a_dead_endpoint_once_the_breaker_opens() {
    let config = PoolConfig {
        max_size: 3,
        acquire_timeout: secs(2),
        ..config()
    };
    let (f, _recorder) = setup("woken", config, SimBehavior::default()).await;
    let held = f.hold(3).await;
    let start = Instant::now();
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let pool = f.pool.clone();
            actix::spawn(async move { pool.acquire().await })
        })
        .collect();
    tokio::time::sleep(ms(1)).await;
    assert_eq!(f.pool.stats().waiters, 5);
    for conn in &held {
        assert!(f.server.kill_connection(conn.id()));
    }
    f.server.go_down();
    drop(held);
    for w in waiters {
        match w.await.unwrap() {
            Err(Error::Timeout {
                phase: Phase::Connect,
                last_error: Some(e),
                ..
            }) => assert!(e.to_string().contains("connection refused"), "{e}"),
            Err(Error::CircuitOpen { key, .. }) => assert_eq!(key, f.pool.key()),
            other => panic!("expected a timeout or CircuitOpen, got {other:?}"),
        }
        assert!(start.elapsed() <= secs(2) + ms(1), "{:?}", start.elapsed());
    }
    // 3 failures open it; in 2s with open times [0.5s, 1s] then [1s, 2s], at most 2 trials.
    assert!(
        f.server.connect_attempts() <= 3 + 3 + 2,
        "{} attempts",
        f.server.connect_attempts()
    );
    assert_eq!(f.pool.stats().breaker, Open);
    assert_eq!(f.pool.stats().in_use, 0);
}

/// Idle connections the server dropped are the pool's to replace, as checkout does: a
/// probe that finds one does not count it against a healthy server.
#[actix::test]
async fn idle_connections_killed_by_the_server_do_not_count_as_failures() {
    let (f, recorder) = setup("idlekilled", config(), SimBehavior::default()).await;
    let held: Vec<_> = futures::future::join_all((0..3).map(|_| f.pool.acquire())).await;
    drop(held);
    assert_eq!(
        f.server.kill_all(),
        3,
        "a server restart drops every idle connection"
    );
    for _ in 0..3 {
        let r = f.sup.health().await.unwrap();
        assert_eq!(r.status, HealthStatus::Healthy, "the server is up: {r:?}");
    }
    assert_eq!(f.pool.stats().breaker, Closed);
    assert!(seen(&recorder).await.is_empty());
    drop(f.pool.acquire().await.unwrap());
    f.assert_quiescent();
}

// ----- an open breaker ---------------------------------------------------------------------

#[actix::test]
async fn an_open_breaker_refuses_at_once_a_caller_whose_deadline_is_before_the_next_trial() {
    let (f, _recorder) = setup("refuse", config(), slow_connects()).await;
    let opened = f.trip().await;

    let t = Instant::now();
    let err = f.pool.acquire_timeout(ms(400)).await.unwrap_err();
    assert_eq!(t.elapsed(), Duration::ZERO, "no waiting");
    let Error::CircuitOpen {
        key,
        retry_in,
        last_error,
    } = &err
    else {
        panic!("expected CircuitOpen, got {err:?}")
    };
    assert_eq!(*key, f.pool.key());
    assert_eq!(err.key(), Some(&f.pool.key()));
    let last = last_error.as_ref().expect("carries the last error");
    assert_eq!(last.kind(), BackendErrorKind::Connect);
    assert!(last.to_string().contains("connection refused"), "{last}");
    // First trip: open for a jittered [open_for / 2, open_for].
    assert!(*retry_in >= ms(500) && *retry_in <= secs(1), "{retry_in:?}");
    let shown = err.to_string();
    assert!(
        shown.contains(&f.pool.key().to_string())
            && shown.contains("circuit open")
            && shown.contains("connection refused"),
        "{shown}"
    );

    // retry_in counts down; the retry time does not move.
    let retry_at = opened + *retry_in;
    settle_for(ms(300)).await;
    assert_eq!(f.refused().await, retry_at - Instant::now());

    // Through the supervisor's Acquire message: at once too.
    let t = Instant::now();
    let err = f
        .sup
        .addr()
        .send(poolwarden::messages::Acquire::new(f.pool.key()).timeout(ms(1)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err:?}");
    assert_eq!(t.elapsed(), Duration::ZERO);
    let r = f.sup.health().await.unwrap();
    assert_eq!(r.status, HealthStatus::Unhealthy);
    assert!(r.unhealthy[0].1.contains("circuit open"), "{r:?}");
    assert_eq!(f.pool.stats().waiters, 0);
}

/// A caller whose deadline lies beyond the next trial waits for it instead of failing:
/// the server back by then, it is served; a restart costs it time, not an error.
#[actix::test]
async fn a_caller_with_time_to_spare_waits_for_the_trial_and_is_served() {
    let (f, recorder) = setup("patient", config(), slow_connects()).await;
    let opened = f.trip().await;
    let retry_in = f.refused().await;
    let waiter = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire_timeout(secs(3)).await })
    };
    settle_for(ms(100)).await;
    assert_eq!(
        f.server.connect_attempts(),
        3,
        "nobody connects before the trial"
    );
    f.server.come_up();
    let conn = waiter.await.unwrap().expect("served after the trial");
    // The trial starts when the open time is up and takes one connect. Timers tick in
    // whole milliseconds and round their deadlines up: the wait for a jittered (fractional)
    // retry time and the connect after it may each end up to a tick late, and the
    // fraction itself rounds up: at most 3 ms past the exact sum.
    let served = Instant::now() - opened;
    assert!(
        served >= retry_in + CONNECT && served <= retry_in + CONNECT + ms(3),
        "served {served:?} retry_in {retry_in:?}"
    );
    drop(conn);
    assert_eq!(
        moves(&seen(&recorder).await)[..2],
        [(Closed, Open), (Open, HalfOpen)]
    );
}

/// The same caller, the server still down: it ends at its own deadline (never later),
/// with the last connect error; the trials in between were the only connects.
#[actix::test]
async fn a_waiting_caller_ends_at_its_deadline_with_the_last_connect_error() {
    let (f, _recorder) = setup("deadline", config(), slow_connects()).await;
    f.trip().await;
    let t = Instant::now();
    let err = f.pool.acquire_timeout(secs(2)).await.unwrap_err();
    let took = t.elapsed();
    assert!(took <= secs(2) + ms(1), "{took:?}");
    match err {
        Error::Timeout {
            last_error: Some(e),
            ..
        } => assert!(e.to_string().contains("connection refused"), "{e}"),
        Error::CircuitOpen {
            last_error: Some(e),
            ..
        } => assert!(e.to_string().contains("connection refused"), "{e}"),
        other => panic!("expected a timeout with the last error, got {other:?}"),
    }
    assert!(
        f.server.connect_attempts() <= 3 + 2,
        "only trials connected"
    );
}

/// An open breaker blocks connects, not reuse: an idle connection is probed and served.
#[actix::test]
async fn an_open_breaker_still_serves_idle_connections_after_probing_them() {
    let (f, _recorder) = setup("reuse", config(), slow_connects()).await;
    drop(f.pool.acquire().await.unwrap());
    assert_eq!(f.pool.stats().idle, 1);
    // New connects are refused (the listener is gone) but the open connection works.
    f.server.refuse_new_connections(true);
    let mut refused = Vec::new();
    for _ in 0..breaker().failure_threshold {
        let held = f.pool.acquire().await.unwrap();
        refused.push(f.pool.acquire_timeout(CONNECT).await.unwrap_err());
        drop(held);
    }
    assert_eq!(f.pool.stats().breaker, Open);
    let queries = f.server.queries();
    let t = Instant::now();
    let conn = f
        .pool
        .acquire()
        .await
        .expect("the idle connection is served");
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(f.server.queries(), queries + 1, "after a probe");
    drop(conn);
    assert_eq!(f.pool.stats().breaker, Open, "a probe is not a trial");
}

// ----- half-open ---------------------------------------------------------------------------

#[actix::test]
async fn half_open_lets_one_trial_through_and_success_threshold_successes_close_it() {
    let (f, recorder) = setup("trial", config(), slow_connects()).await;
    let opened = f.trip().await;
    let retry_in = f.refused().await;
    f.server.come_up();

    // Just before the open time is up: still refused. (`advance` moves the paused clock
    // exactly; a sleep would round up to the next millisecond tick.)
    tokio::time::advance(retry_in - ms(1)).await;
    assert_eq!(f.refused().await, ms(1));
    tokio::time::advance(ms(1)).await;
    assert_eq!(Instant::now(), opened + retry_in);

    // The trial connects (50ms); meanwhile callers who cannot wait for it are refused at
    // once, and the others wait for its outcome without connecting.
    let trial = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    settle().await;
    assert_eq!(f.pool.stats().breaker, HalfOpen);
    assert_eq!(f.server.in_flight_connects(), 1);
    let patient: Vec<_> = (0..3)
        .map(|_| {
            let pool = f.pool.clone();
            tokio::spawn(async move { pool.acquire_timeout(ms(20)).await })
        })
        .collect();
    for r in futures::future::join_all(patient).await {
        let err = r.unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Timeout {
                    phase: Phase::Connect,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert_eq!(f.server.in_flight_connects(), 1, "still only the trial");
    assert_eq!(
        f.server.connect_attempts(),
        4,
        "3 refused, then only the trial"
    );

    let conn = trial.await.unwrap().expect("the trial succeeds");
    drop(conn);
    assert_eq!(
        f.pool.stats().breaker,
        HalfOpen,
        "one success of the two needed"
    );

    // The second success is the idle connection answering its probe (a half-open breaker
    // probes before it hands out).
    let queries = f.server.queries();
    drop(f.pool.acquire().await.expect("the second success"));
    assert_eq!(f.server.queries(), queries + 1, "probed");
    assert_eq!(f.pool.stats().breaker, Closed);
    assert_eq!(f.server.connects(), 1);

    let events = seen(&recorder).await;
    assert_eq!(
        moves(&events),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
    assert!(events.iter().all(|e| e.key == f.pool.key()));
    assert_eq!(events[1].at, opened + retry_in);
    assert!(
        events[1].reason.contains("open time elapsed"),
        "{}",
        events[1].reason
    );
    assert!(
        events[2].reason.contains("trials succeeded"),
        "{}",
        events[2].reason
    );

    // Closed: traffic flows without probing.
    let queries = f.server.queries();
    for _ in 0..3 {
        drop(f.pool.acquire().await.unwrap());
    }
    assert_eq!(f.server.queries(), queries);
}

#[actix::test]
async fn a_cancelled_trial_frees_the_trial_for_the_next_acquire() {
    let (f, recorder) = setup("canceltrial", config(), slow_connects()).await;
    f.trip().await;
    let retry_in = f.refused().await;
    f.server.come_up();
    settle_for(retry_in).await;

    // The trial is abandoned mid-connect.
    assert!(tokio::time::timeout(ms(10), f.pool.acquire())
        .await
        .is_err());
    assert_eq!(f.pool.stats().breaker, HalfOpen);
    assert_eq!(f.server.in_flight_connects(), 0);
    // The next acquire is the trial, not refused forever.
    drop(f.pool.acquire().await.expect("a new trial"));
    drop(f.pool.acquire().await.expect("the second trial"));
    assert_eq!(f.pool.stats().breaker, Closed);
    assert_eq!(
        moves(&seen(&recorder).await),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
    f.assert_quiescent();
}

/// How the trial in [`waiter_behind_a_trial_that`] ends without an outcome.
#[derive(Debug, Clone, Copy)]
enum Ends {
    /// Its acquire is cancelled mid-connect.
    Cancelled,
    /// Its connect fails with an error of this kind, which says nothing about the endpoint.
    Failing(BackendErrorKind),
}

/// A caller waits behind a half-open trial that then ends without an outcome (`ends`):
/// the trial passes to that caller at once, not at its deadline (5 s), and it is served one
/// connect later.
async fn waiter_behind_a_trial_that(ends: Ends) {
    let (f, _recorder) = setup(&format!("{ends:?}"), config(), slow_connects()).await;
    f.trip().await;
    let retry_in = f.refused().await;
    f.server.come_up();
    settle_for(retry_in).await;
    if let Ends::Failing(kind) = ends {
        f.server.fail_next_connects_as(kind, 1);
    }
    let trial = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    settle().await;
    assert_eq!(f.pool.stats().breaker, HalfOpen, "{ends:?}");
    assert_eq!(f.server.in_flight_connects(), 1, "{ends:?}: the trial");
    let waiter = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    settle().await;
    assert_eq!(
        f.server.in_flight_connects(),
        1,
        "{ends:?}: the waiter waits for the trial"
    );
    let ended = match ends {
        Ends::Cancelled => {
            settle_for(ms(10)).await;
            trial.abort();
            assert!(trial.await.unwrap_err().is_cancelled());
            Instant::now()
        }
        Ends::Failing(kind) => {
            let err = trial.await.unwrap().expect_err("the trial's connect fails");
            assert_eq!(err.backend_error().map(|e| e.kind()), Some(kind), "{err:?}");
            Instant::now()
        }
    };
    assert_eq!(f.pool.stats().breaker, HalfOpen, "{ends:?}: no outcome");
    let conn = waiter
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{ends:?}: the waiter is served: {e:?}"));
    // One connect after the trial ended (timers tick in whole milliseconds).
    let waited = ended.elapsed();
    assert!(
        waited <= CONNECT + ms(5),
        "{ends:?}: served {waited:?} after the trial ended"
    );
    drop(conn);
    assert_eq!(
        f.server.connects(),
        1,
        "{ends:?}: the waiter's was the one connect"
    );
}

#[actix::test]
async fn a_trial_cancelled_while_others_wait_passes_to_a_waiting_caller_at_once() {
    waiter_behind_a_trial_that(Ends::Cancelled).await;
}

#[actix::test]
async fn a_trial_refused_as_misconfigured_passes_to_a_waiting_caller_at_once() {
    waiter_behind_a_trial_that(Ends::Failing(BackendErrorKind::Config)).await;
}

#[actix::test]
async fn a_trial_refused_its_login_passes_to_a_waiting_caller_at_once() {
    waiter_behind_a_trial_that(Ends::Failing(BackendErrorKind::Auth)).await;
}

#[actix::test]
async fn a_failed_trial_reopens_for_longer_each_time_up_to_the_cap() {
    let (f, recorder) = setup("reopen", config(), slow_connects()).await;
    f.trip().await;
    // The first trip: open for [0.5s, 1s].
    let mut retry_in = f.refused().await;
    let mut open_times = vec![retry_in];
    for _ in 0..4 {
        tokio::time::advance(retry_in).await;
        // The trial's connect is refused: the breaker opens again at once.
        let t = Instant::now();
        let err = f.pool.acquire_timeout(CONNECT).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(t.elapsed() >= CONNECT && t.elapsed() <= CONNECT + ms(1));
        let events = seen(&recorder).await;
        let reopened = events.last().unwrap();
        assert_eq!((reopened.from, reopened.to), (HalfOpen, Open));
        assert!(
            reopened.reason.contains("trial failed")
                && reopened.reason.contains("connection refused"),
            "{}",
            reopened.reason
        );
        let waited = Instant::now() - reopened.at;
        retry_in = f.refused().await;
        open_times.push(waited + retry_in);
    }
    // Ceilings 1s, 2s, 4s, then capped at 4s; each open time in [ceiling / 2, ceiling].
    let ceilings = [secs(1), secs(2), secs(4), secs(4), secs(4)];
    for (open, ceiling) in open_times.iter().zip(ceilings) {
        assert!(
            *open >= ceiling / 2 && *open <= ceiling,
            "open for {open:?}, ceiling {ceiling:?}: {open_times:?}"
        );
    }
    // Growing while the ceiling doubles ([c/2, c] then [c, 2c]); jittered under the cap.
    assert!(
        open_times[..3].windows(2).all(|w| w[0] <= w[1]),
        "growing: {open_times:?}"
    );

    // The server comes back: two successful trials close it, and the next trip starts
    // from open_for again.
    f.server.come_up();
    tokio::time::advance(retry_in).await;
    drop(f.pool.acquire().await.expect("first trial"));
    drop(f.pool.acquire().await.expect("second trial"));
    assert_eq!(f.pool.stats().breaker, Closed);
    let mut expected = vec![(Closed, Open)];
    for _ in 0..4 {
        expected.extend([(Open, HalfOpen), (HalfOpen, Open)]);
    }
    expected.extend([(Open, HalfOpen), (HalfOpen, Closed)]);
    assert_eq!(moves(&seen(&recorder).await), expected);

    f.trip().await;
    let again = f.refused().await;
    assert!(again <= secs(1), "the open time was reset: {again:?}");
}

// ----- background probes -------------------------------------------------------------------

#[actix::test]
async fn background_probes_heal_an_open_breaker_with_no_traffic() {
    let interval = ms(500);
    let (f, recorder) = setup(
        "heal",
        PoolConfig {
            probe_interval: Some(interval),
            probe_timeout: ms(200),
            breaker: BreakerConfig {
                open_for: secs(2),
                max_open_for: secs(2),
                ..breaker()
            },
            ..config()
        },
        slow_connects(),
    )
    .await;
    drop(f.pool.acquire().await.unwrap());
    f.server.go_down();
    // Nobody acquires: the background probes find out.
    assert!(
        eventually(secs(5), || f.pool.stats().breaker == Open).await,
        "the probes open it"
    );
    let opened = seen(&recorder).await[0].at;
    // Once the probe that opened it has used up its budget, the probes leave the server
    // alone until the open time is up.
    settle_for(ms(200)).await;
    let attempts = f.server.connect_attempts();
    let retry_in = f.refused().await;
    // (Stop a few milliseconds short: the settling millisecond must not reach the trial.)
    tokio::time::advance(retry_in - ms(5)).await;
    settle().await;
    assert_eq!(f.server.connect_attempts(), attempts);
    f.server.come_up();

    let served = f.pool.stats().served;
    assert!(
        eventually(secs(10), || f.pool.stats().breaker == Closed).await,
        "healed"
    );
    // The first probe after the open time is the trial; the next one closes it.
    let healed = Instant::now() - opened;
    let bound = secs(2) + interval * 2 + CONNECT * 2;
    assert!(healed <= bound, "healed after {healed:?} (bound {bound:?})");
    assert_eq!(f.pool.stats().served, served, "no traffic did it");
    assert_eq!(
        moves(&seen(&recorder).await),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
    drop(f.pool.acquire().await.expect("serves again"));
}

/// A pool left half-open with every connection it may have open and idle (one trial
/// succeeded and filled it; then the traffic stopped) heals with no traffic: a probe that
/// cannot connect for its trial probes an idle connection, which counts toward closing.
#[actix::test]
async fn background_probes_heal_a_full_pool_left_half_open_with_no_traffic() {
    let interval = ms(500);
    let (f, recorder) = setup(
        "fullheal",
        PoolConfig {
            max_size: 1,
            probe_interval: Some(interval),
            probe_timeout: ms(200),
            ..config()
        },
        slow_connects(),
    )
    .await;
    f.trip().await;
    let retry_in = f.refused().await;
    f.server.come_up();
    settle_for(retry_in).await;
    drop(f.pool.acquire().await.expect("the first trial"));
    let s = f.pool.stats();
    assert_eq!((s.breaker, s.live, s.idle), (HalfOpen, 1, 1), "{s:?}");
    let (connects, queries, half_open) = (f.server.connects(), f.server.queries(), Instant::now());
    assert!(
        eventually(secs(10), || f.pool.stats().breaker == Closed).await,
        "healed: {:?}",
        f.pool.stats()
    );
    let healed = half_open.elapsed();
    assert!(
        healed <= interval * 2,
        "healed {healed:?} after the first trial"
    );
    assert_eq!(
        f.server.connects(),
        connects,
        "no connect past the pool's size"
    );
    assert_eq!(
        f.server.queries(),
        queries + 1,
        "the idle connection's probe"
    );
    assert_eq!(
        moves(&seen(&recorder).await),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
}

/// The server goes down at an arbitrary moment; with no traffic, the next background probe
/// (at most `probe_interval` later) finds out within `probe_timeout`, and `confirms` more
/// probe timeouts (an old connection's timed-out probe is confirmed on a fresh one).
async fn detection(name: &str, fault: fn(&Fixture), confirms: u32) {
    let interval = secs(1);
    let probe_timeout = ms(300);
    let (f, recorder) = setup(
        name,
        PoolConfig {
            probe_interval: Some(interval),
            probe_timeout,
            breaker: BreakerConfig {
                failure_threshold: 1,
                ..breaker()
            },
            ..config()
        },
        SimBehavior::default(),
    )
    .await;
    drop(f.pool.acquire().await.unwrap());
    for offset in [ms(1370), ms(2210)] {
        settle_for(offset).await;
        assert_eq!(f.pool.stats().breaker, Closed, "healthy so far");
    }
    let down = Instant::now();
    fault(&f);
    let within = interval + probe_timeout * (1 + confirms);
    assert!(
        eventually(within + ms(10), || f.pool.stats().breaker == Open).await,
        "not detected within the probe interval and timeout"
    );
    // (Timers tick in whole milliseconds: allow one for the probe's start, one for its end.)
    let events = seen(&recorder).await;
    assert_eq!(moves(&events), [(Closed, Open)]);
    let took = events[0].at - down;
    assert!(
        took <= within + ms(2) * (1 + confirms),
        "detected after {took:?}"
    );
    let r = f.sup.health().await.unwrap();
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    assert_eq!(r.unhealthy[0].0, f.pool.key());
    assert_eq!(f.pool.stats().served, 1, "no traffic needed");
}

#[actix::test]
async fn a_down_server_is_detected_within_probe_interval_plus_probe_timeout() {
    detection("detectdown", |f| f.server.go_down(), 0).await;
}

#[actix::test]
async fn a_hung_server_is_detected_within_probe_interval_plus_two_probe_timeouts() {
    // Connections stay open but nothing answers: the old connection's probe times out,
    // and so does a fresh one's, which is the evidence.
    detection("detecthung", |f| f.server.stall_next_probes(1_000), 1).await;
}

#[actix::test]
async fn a_health_check_reports_a_down_server_within_its_budget() {
    let (f, _recorder) = setup("healthdown", config(), SimBehavior::default()).await;
    drop(f.pool.acquire().await.unwrap());
    assert_eq!(f.sup.health().await.unwrap().status, HealthStatus::Healthy);
    f.server.go_down();
    let t = Instant::now();
    let r = f.sup.health().await.unwrap();
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    let why = &r.unhealthy[0].1;
    assert!(
        why.contains("connection refused") || why.contains("server is down"),
        "{r:?}"
    );
    // The supervisor's default health budget is 2s (timers tick in whole milliseconds).
    assert!(t.elapsed() <= secs(2) + ms(1), "{:?}", t.elapsed());
    // The failed probe opened the breaker, so the probe stopped retrying; once the server
    // is back, the first health check after the open time is the breaker's trial.
    f.server.come_up();
    tokio::time::sleep(secs(1)).await;
    assert_eq!(f.sup.health().await.unwrap().status, HealthStatus::Healthy);
}
