//! The startup packet under `pooler=transaction`: PgBouncer 1.18 accepts it (it refuses
//! the `options` parameter that carries `statement_timeout` without a pooler), the
//! `application_name` passes, and `statement_timeout` is set per transaction.

use std::io::Write;
use std::sync::{Arc, Mutex};

use poolwarden::backends::postgres::{PostgresBackend, TRANSACTION_POOLER_WARNING};
use poolwarden::{Backend, BackendError, BackendErrorKind};
use tokio::time::Instant;

use crate::common::{secs, PgBouncer};
use crate::{behind_pooler, pool_config, start_pool};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix::test]
async fn statement_timeout_goes_by_set_local_through_pgbouncer() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);

    let mut direct = bouncer.config();
    direct.application_name = Some("pw-startup".into());
    direct
        .options
        .insert("statement_timeout".into(), "1500ms".into());

    // Without the pooler setting, `statement_timeout` travels as the `options` startup
    // parameter, which PgBouncer 1.18 refuses.
    let refused = PostgresBackend::new()
        .connect(&direct)
        .await
        .expect_err("PgBouncer refuses the `options` startup parameter");
    assert!(
        refused
            .to_string()
            .contains("unsupported startup parameter"),
        "{refused}"
    );

    let config = behind_pooler(direct);
    let (_sup, pool) = start_pool(config, pool_config(4)).await;
    let mut conn = pool.acquire().await.expect("connects through PgBouncer");
    let second = pool.acquire().await.expect("a second connection");
    drop(second);
    let app: String = conn
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .expect("application_name")
        .get(0);
    assert_eq!(app, "pw-startup", "application_name passes PgBouncer 1.18");

    let tx = conn.transaction().await.expect("BEGIN");
    let timeout: String = tx
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("SHOW")
        .get(0);
    assert_eq!(timeout, "1500ms", "SET LOCAL right after BEGIN");
    let t = Instant::now();
    let err = tx
        .query_one("SELECT pg_sleep(5)", &[])
        .await
        .expect_err("cancelled by statement_timeout");
    let took = t.elapsed();
    assert_eq!(BackendError::from(err).kind(), BackendErrorKind::Timeout);
    assert!(took >= secs(1) && took < secs(4), "took {took:?}");
    drop(tx); // rolled back

    // Outside a transaction the setting is the server's (here its default): a single
    // statement gets the role's / database's statement_timeout or PgBouncer's query_timeout.
    let outside: String = conn
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("SHOW outside")
        .get(0);
    assert_eq!(outside, "0");
    drop(conn);

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let warnings = text.matches(TRANSACTION_POOLER_WARNING).count();
    assert_eq!(warnings, 1, "one warning per pool:\n{text}");
    assert!(text.contains("PoolHandle::dedicated()"), "{text}");
}
