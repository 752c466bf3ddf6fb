//! The checked-out connection: derefs to the backend's connection, returns it on drop.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use super::conn::Conn;
use super::shared::PoolShared;
use crate::backends::Backend;
use crate::key::PoolKey;

/// A connection checked out of a pool. Dropping it returns the connection (after the
/// backend's reset step); [`discard`](Self::discard) closes it instead.
pub struct PooledConnection<B: Backend> {
    pool: Arc<PoolShared<B>>,
    conn: Option<Conn<B::Connection>>,
    /// When it was handed out, on the pool's clock: its use time runs from here.
    since: u64,
}

impl<B: Backend> PooledConnection<B> {
    pub(crate) fn new(pool: Arc<PoolShared<B>>, conn: Conn<B::Connection>, since: u64) -> Self {
        Self {
            pool,
            conn: Some(conn),
            since,
        }
    }

    /// The pool this connection belongs to.
    pub fn key(&self) -> PoolKey {
        self.pool.key
    }

    /// How long ago this connection was opened.
    pub fn age(&self) -> Duration {
        self.conn().created.elapsed()
    }

    /// Return the connection now (the same as dropping the guard).
    pub fn release(self) {}

    /// Close the connection instead of returning it: it is broken or in a state that
    /// must not be reused. Its slot is freed.
    pub fn discard(mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.release(c, true, self.since);
        }
    }

    fn conn(&self) -> &Conn<B::Connection> {
        self.conn.as_ref().expect("present until drop")
    }
}

impl<B: Backend> Deref for PooledConnection<B> {
    type Target = B::Connection;
    fn deref(&self) -> &B::Connection {
        &self.conn().raw
    }
}

impl<B: Backend> DerefMut for PooledConnection<B> {
    fn deref_mut(&mut self) -> &mut B::Connection {
        &mut self.conn.as_mut().expect("present until drop").raw
    }
}

impl<B: Backend> Drop for PooledConnection<B> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.release(c, false, self.since);
        }
    }
}

impl<B: Backend> fmt::Debug for PooledConnection<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("pool", &self.pool.key)
            .field("age", &self.age())
            .finish_non_exhaustive()
    }
}
