//! PgBouncer stopped and started again under load: callers get named errors within their
//! deadlines, the pool serves again by itself, no connection leaks.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use tokio::time::Instant;

use crate::common::{ms, secs, PgBouncer};
use crate::pause::{assert_nothing_leaked, load};
use crate::{behind_pooler, pool_config, start_pool};

#[actix::test]
async fn pgbouncer_restart_under_load() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let bouncer = Arc::new(bouncer);
    let (_sup, pool) = start_pool(behind_pooler(bouncer.config()), pool_config(8)).await;
    pool.warm(8).await.expect("warm the pool");
    let (acquire, query) = (secs(2), secs(2));
    let stop = Cell::new(false);
    let ops = RefCell::new(Vec::new());
    let window = Cell::new(None);
    let control = async {
        tokio::time::sleep(ms(400)).await;
        let down = Instant::now();
        let b = Arc::clone(&bouncer);
        tokio::task::spawn_blocking(move || b.stop()).await.unwrap();
        assert!(bouncer.clients().await.is_err(), "PgBouncer is down");
        let before = pool.stats();
        tokio::time::sleep(ms(500)).await;
        let b = Arc::clone(&bouncer);
        tokio::task::spawn_blocking(move || b.start_again())
            .await
            .unwrap();
        let up = Instant::now();
        window.set(Some((down, up, before)));
        tokio::time::sleep(ms(2000)).await;
        stop.set(true);
    };
    futures::future::join(control, load(&pool, 8, acquire, query, &stop, &ops)).await;
    let (down, up, before) = window.take().expect("restarted");
    assert_eq!(
        before.created, 8,
        "every connection was open before the stop: {before:?}"
    );
    let ops = ops.into_inner();

    let mut names = std::collections::BTreeMap::<String, usize>::new();
    let mut longest_failure = std::time::Duration::ZERO;
    for o in ops.iter() {
        if let Some(e) = &o.error {
            let name = e.clone().unwrap_or_else(|e| panic!("unnamed error: {e}"));
            let took = o.end - o.start;
            longest_failure = longest_failure.max(took);
            assert!(took <= acquire + query + ms(300), "{name} after {took:?}");
            *names.entry(name).or_default() += 1;
        }
    }
    let late: Vec<_> = ops.iter().filter(|o| o.start > up + ms(1000)).collect();
    let late_failed: Vec<_> = late.iter().filter(|o| o.error.is_some()).collect();
    eprintln!(
        "restart: {} ops, down {:?}, errors {names:?} (longest {longest_failure:?}), \
         {} ops from 1 s after restart, {:?}",
        ops.len(),
        up - down,
        late.len(),
        pool.stats()
    );
    assert!(!late.is_empty(), "served again after the restart");
    // Every connection open at the stop was found dead and replaced, none reused.
    let s = pool.stats();
    assert!(s.closed >= 8, "{s:?}");
    assert_eq!(s.created - s.closed, s.live as u64, "{s:?}");
    assert!(
        late_failed.is_empty(),
        "failed after the restart: {late_failed:?}"
    );
    assert_nothing_leaked(&bouncer, &pool).await;
    let servers = bouncer.servers().await.expect("SHOW SERVERS");
    assert!(
        servers <= bouncer.pool_size() as usize,
        "SHOW SERVERS: {servers}"
    );
}
