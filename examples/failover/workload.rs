//! What the load does: one read and one write statement per backend, the readers and
//! writers that run them in a loop, and what each operation adds to the counters.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use poolwarden::backends::sim::SimBackend;
use poolwarden::{Backend, Error, PoolKey, ReadOptions};
use tokio::time::Instant;

use crate::counters::record_wait;
use crate::demo::Demo;

/// One read and one write statement on a backend's connection.
pub trait Workload: Backend + Clone {
    fn read(conn: &mut Self::Connection) -> impl Future<Output = Result<(), String>>;
    fn write(conn: &mut Self::Connection) -> impl Future<Output = Result<(), String>>;
}

impl Workload for SimBackend {
    async fn read(conn: &mut Self::Connection) -> Result<(), String> {
        conn.query("SELECT * FROM orders WHERE id = 42")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
    async fn write(conn: &mut Self::Connection) -> Result<(), String> {
        conn.query("INSERT INTO orders VALUES (42)")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[cfg(feature = "postgres")]
impl Workload for poolwarden::backends::postgres::PostgresBackend {
    async fn read(conn: &mut Self::Connection) -> Result<(), String> {
        conn.batch_execute("SELECT max(id) FROM poolwarden_failover")
            .await
            .map_err(|e| e.to_string())
    }
    async fn write(conn: &mut Self::Connection) -> Result<(), String> {
        conn.batch_execute("INSERT INTO poolwarden_failover (at) VALUES (now())")
            .await
            .map_err(|e| e.to_string())
    }
}

pub fn error_key(e: &Error) -> Option<PoolKey> {
    match e {
        Error::Timeout { key, .. }
        | Error::Backend { key, .. }
        | Error::BackendPanic { key, .. }
        | Error::CircuitOpen { key, .. }
        | Error::PoolFailed { key, .. }
        | Error::PoolSaturated { key, .. }
        | Error::PoolClosed { key, .. }
        | Error::UnknownKey { key, .. } => Some(*key),
        _ => None,
    }
}

impl<B: Workload> Demo<B> {
    pub fn read_ok(&self, key: PoolKey) {
        self.totals.reads.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = self.member(key) {
            m.reads.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn failed(&self, key: Option<PoolKey>, read: bool) {
        let total = if read {
            &self.totals.read_errors
        } else {
            &self.totals.write_errors
        };
        total.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = key.and_then(|k| self.member(k)) {
            m.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One read: acquire (routed by the set), run the read statement, release.
    pub async fn read_once(&self, options: ReadOptions) -> bool {
        let asked = Instant::now();
        let read = self.set.read_with(options).await;
        record_wait(&self.totals.slowest_read_us, asked);
        match read {
            Ok(mut conn) => {
                let key = conn.key();
                match B::read(&mut conn).await {
                    Ok(()) => {
                        self.read_ok(key);
                        true
                    }
                    Err(e) => {
                        tracing::debug!(member = %self.label(key), error = %e, "read failed");
                        self.failed(Some(key), true);
                        false
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "read acquire failed");
                self.failed(error_key(&e), true);
                false
            }
        }
    }

    pub async fn reader(self) {
        while !self.stop.load(Ordering::Relaxed) {
            let ok = self.read_once(ReadOptions::default()).await;
            pause(ok, 5).await;
        }
    }

    pub async fn writer(self) {
        while !self.stop.load(Ordering::Relaxed) {
            let ok = match self.write_once().await {
                Some(token) => {
                    // Read-your-writes: only a member that replayed this write serves it.
                    let after = ReadOptions {
                        after: token,
                        ..ReadOptions::default()
                    };
                    if self.read_once(after).await && token.is_some() {
                        self.totals.ryw_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    true
                }
                None => false,
            };
            pause(ok, 20).await;
        }
    }

    /// One write; its causality token (if the backend has one) when it succeeded.
    pub async fn write_once(&self) -> Option<Option<poolwarden::CausalityToken>> {
        let asked = Instant::now();
        let write = self.set.write().await;
        record_wait(&self.totals.slowest_write_us, asked);
        let mut conn = match write {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "write acquire failed");
                self.failed(error_key(&e), false);
                self.writes.lock().unwrap().failed(Instant::now());
                return None;
            }
        };
        let key = conn.key();
        if let Err(e) = B::write(&mut conn).await {
            tracing::debug!(member = %self.label(key), error = %e, "write failed");
            drop(conn);
            self.failed(Some(key), false);
            self.writes.lock().unwrap().failed(Instant::now());
            return None;
        }
        let token = match self.set.release_write(conn).await {
            Ok(token) => token,
            // The write itself went through: only its token is missing.
            Err(e) => {
                tracing::debug!(member = %self.label(key), error = %e, "no write position");
                None
            }
        };
        self.totals.writes.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = self.member(key) {
            m.writes.fetch_add(1, Ordering::Relaxed);
        }
        self.writes.lock().unwrap().ok(key, Instant::now());
        Some(token)
    }
}

/// Between operations: a short pause, longer after a failure (as a real client backs off).
pub async fn pause(ok: bool, ms: u64) {
    let ms = if ok { ms } else { ms * 5 };
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
