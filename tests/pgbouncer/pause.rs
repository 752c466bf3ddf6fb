//! `PAUSE`/`RESUME` under load: queries wait while PgBouncer is paused and complete after
//! `RESUME`, or fail within their deadline with a named error; nothing leaks.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use tokio::time::Instant;

use crate::common::{self, ms, secs, PgBouncer};
use crate::{
    behind_pooler, clients_match_pool, named_pool_error, named_query_error, pool_config,
    start_pool, Pg,
};
use poolwarden::PoolHandle;

/// One operation: when it started and ended, and its error's name if it failed.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub start: Instant,
    pub end: Instant,
    pub error: Option<Result<String, String>>,
}

/// Acquire within `acquire`, then `SELECT $1::int8 * 2` within `query`; checked.
pub(crate) async fn one_op(pool: &PoolHandle<Pg>, acquire: Duration, query: Duration) -> Op {
    let start = Instant::now();
    let error = match pool.acquire_timeout(acquire).await {
        Err(e) => Some(named_pool_error(&e)),
        Ok(conn) => {
            let x = rand::random::<i64>() >> 2;
            match tokio::time::timeout(query, conn.query_one("SELECT $1::int8 * 2", &[&x])).await {
                Err(_) => Some(Ok("QueryDeadline".to_string())),
                Ok(Err(e)) => Some(named_query_error(e)),
                Ok(Ok(row)) if row.get::<_, i64>(0) == x * 2 => None,
                Ok(Ok(row)) => Some(Err(format!("wrong result {row:?}"))),
            }
        }
    };
    Op {
        start,
        end: Instant::now(),
        error,
    }
}

/// `loops` concurrent callers running [`one_op`] until `stop` is set.
pub(crate) async fn load(
    pool: &PoolHandle<Pg>,
    loops: usize,
    acquire: Duration,
    query: Duration,
    stop: &Cell<bool>,
    ops: &RefCell<Vec<Op>>,
) {
    let callers = (0..loops).map(|_| async {
        while !stop.get() {
            let op = one_op(pool, acquire, query).await;
            ops.borrow_mut().push(op);
        }
    });
    futures::future::join_all(callers).await;
}

/// Nothing leaked: no connection checked out, PgBouncer's clients are the pool's live
/// connections, the server has at most `default_pool_size` connections.
pub(crate) async fn assert_nothing_leaked(bouncer: &PgBouncer, pool: &PoolHandle<Pg>) {
    let idle = common::eventually(secs(10), || async {
        let s = pool.stats();
        (s.in_use == 0 && s.connecting == 0).then_some(())
    })
    .await;
    assert!(idle.is_some(), "connections still out: {:?}", pool.stats());
    let (clients, live) = clients_match_pool(bouncer, pool, secs(10)).await;
    assert_eq!(
        clients,
        live,
        "PgBouncer clients vs pool live ({:?})",
        pool.stats()
    );
    let servers = bouncer.server_connections().await;
    assert!(
        servers <= i64::from(bouncer.pool_size()),
        "{servers} server connections (default_pool_size {})",
        bouncer.pool_size()
    );
    let s = pool.stats();
    assert!(s.live <= s.max_size as usize, "{s:?}");
}

#[actix::test]
async fn queries_wait_out_a_short_pause_and_complete_after_resume() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let (_sup, pool) = start_pool(behind_pooler(bouncer.config()), pool_config(8)).await;
    pool.warm(8).await.expect("warm the pool");
    let stop = Cell::new(false);
    let ops = RefCell::new(Vec::new());
    let paused_for = ms(800);
    let window = Cell::new(None);
    let control = async {
        tokio::time::sleep(ms(300)).await;
        bouncer.pause().await; // returns once running transactions finished
        let paused = Instant::now();
        tokio::time::sleep(paused_for).await;
        let resuming = Instant::now();
        bouncer.resume().await;
        window.set(Some((paused, resuming)));
        tokio::time::sleep(ms(400)).await;
        stop.set(true);
    };
    futures::future::join(control, load(&pool, 8, secs(5), secs(5), &stop, &ops)).await;
    let (paused, resuming) = window.get().expect("paused and resumed");
    let ops = ops.into_inner();

    let failed: Vec<_> = ops.iter().filter(|o| o.error.is_some()).collect();
    assert!(
        failed.is_empty(),
        "a pause shorter than the deadlines failed: {failed:?}"
    );
    // Nothing completes while paused (a little slack for answers already on their way).
    let during: Vec<_> = ops
        .iter()
        .filter(|o| o.end > paused + ms(50) && o.end < resuming)
        .collect();
    assert!(during.is_empty(), "completed while paused: {during:?}");
    let waited = ops
        .iter()
        .filter(|o| o.start < resuming && o.end > resuming)
        .map(|o| o.end - o.start)
        .max()
        .expect("queries waited through the pause");
    let after = ops.iter().filter(|o| o.start > resuming).count();
    eprintln!(
        "short pause: {} ops, longest wait {waited:?} (paused {paused_for:?}), {after} after resume",
        ops.len()
    );
    assert!(waited >= paused_for / 2, "longest wait {waited:?}");
    assert!(after > 0, "served after resume");
    assert_nothing_leaked(&bouncer, &pool).await;
}

#[actix::test]
async fn a_long_pause_fails_callers_within_their_deadline_with_named_errors() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let (_sup, pool) = start_pool(behind_pooler(bouncer.config()), pool_config(8)).await;
    pool.warm(8).await.expect("warm the pool");
    let (acquire, query) = (ms(300), ms(400));
    let stop = Cell::new(false);
    let ops = RefCell::new(Vec::new());
    let window = Cell::new(None);
    let control = async {
        tokio::time::sleep(ms(300)).await;
        bouncer.pause().await;
        let paused = Instant::now();
        tokio::time::sleep(ms(1500)).await;
        let resuming = Instant::now();
        bouncer.resume().await;
        window.set(Some((paused, resuming)));
        tokio::time::sleep(ms(1500)).await;
        stop.set(true);
    };
    futures::future::join(control, load(&pool, 8, acquire, query, &stop, &ops)).await;
    let (paused, resuming) = window.get().expect("paused and resumed");
    let ops = ops.into_inner();

    let slack = ms(250);
    let mut names = std::collections::BTreeMap::<String, usize>::new();
    for o in ops.iter() {
        if let Some(e) = &o.error {
            let name = e.clone().unwrap_or_else(|e| panic!("unnamed error: {e}"));
            assert!(
                o.end - o.start <= acquire + query + slack,
                "{name} after {:?}",
                o.end - o.start
            );
            *names.entry(name).or_default() += 1;
        }
    }
    let during = ops
        .iter()
        .filter(|o| o.start > paused && o.end < resuming)
        .count();
    let failed_during = ops
        .iter()
        .filter(|o| o.start > paused && o.end < resuming && o.error.is_some())
        .count();
    // After resume, once abandoned requests were answered, everything works again.
    let late: Vec<_> = ops
        .iter()
        .filter(|o| o.start > resuming + ms(500))
        .collect();
    let late_failed: Vec<_> = late.iter().filter(|o| o.error.is_some()).collect();
    eprintln!(
        "long pause: {} ops, {during} during the pause ({failed_during} failed), errors {names:?}, \
         {} after resume (+500 ms), {:?}",
        ops.len(),
        late.len(),
        pool.stats()
    );
    assert!(
        failed_during > 0 && failed_during == during,
        "every op in the pause failed"
    );
    assert!(!late.is_empty(), "served after resume");
    assert!(
        late_failed.is_empty(),
        "failed after resume: {late_failed:?}"
    );
    assert_nothing_leaked(&bouncer, &pool).await;
}
