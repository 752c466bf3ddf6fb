//! [`PgTransaction`]: a transaction on a [`PgConnection`](super::PgConnection) with the
//! same pooler-safe query methods.

use std::fmt;
use std::ops::Deref;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use super::params::{typed, PgParam};

/// A transaction started by [`PgConnection::transaction`](super::PgConnection::transaction).
///
/// Its [`query`](Self::query), [`query_one`](Self::query_one), [`query_opt`](Self::query_opt)
/// and [`execute`](Self::execute) run on the unnamed statement like the connection's; it
/// derefs to [`tokio_postgres::Transaction`] for the rest (savepoints, `copy_in`, portals).
///
/// It ends with [`commit`](Self::commit) or [`rollback`](Self::rollback). Dropped without
/// either (an early return, a `?`, a cancelled future), it is rolled back as tokio-postgres
/// does it: a `ROLLBACK` (a simple query) is queued on the connection at once, without
/// waiting, so the next request on this connection runs after it. If the connection goes
/// back to the pool first, the pool's reset sees the open transaction on the wire (the
/// transaction status of the last ReadyForQuery), waits for the queued `ROLLBACK` and
/// sends one itself only if the server is still in the transaction: nothing leaks to the
/// next borrower, and behind a transaction pooler the server session is released when the
/// rollback completes.
pub struct PgTransaction<'a> {
    pub(super) tx: tokio_postgres::Transaction<'a>,
}

impl<'a> PgTransaction<'a> {
    /// Like [`PgConnection::query`](super::PgConnection::query), inside the transaction.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&dyn PgParam],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.tx.query_typed(sql, &typed(params)).await
    }

    /// Like [`PgConnection::query_one`](super::PgConnection::query_one).
    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&dyn PgParam],
    ) -> Result<Row, tokio_postgres::Error> {
        self.tx.query_typed_one(sql, &typed(params)).await
    }

    /// Like [`PgConnection::query_opt`](super::PgConnection::query_opt).
    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&dyn PgParam],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        self.tx.query_typed_opt(sql, &typed(params)).await
    }

    /// Like [`PgConnection::execute`](super::PgConnection::execute).
    pub async fn execute(
        &self,
        sql: &str,
        params: &[&dyn PgParam],
    ) -> Result<u64, tokio_postgres::Error> {
        self.tx.execute_typed(sql, &typed(params)).await
    }

    /// tokio-postgres's [`query_typed`](tokio_postgres::Transaction::query_typed): types
    /// given per parameter, for values that are not [`PgParam`]s. One round trip, unnamed
    /// statement.
    pub async fn query_typed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.tx.query_typed(sql, params).await
    }

    /// `COMMIT`.
    pub async fn commit(self) -> Result<(), tokio_postgres::Error> {
        self.tx.commit().await
    }

    /// `ROLLBACK`.
    pub async fn rollback(self) -> Result<(), tokio_postgres::Error> {
        self.tx.rollback().await
    }

    /// The tokio-postgres transaction.
    pub fn inner(&self) -> &tokio_postgres::Transaction<'a> {
        &self.tx
    }
}

impl<'a> Deref for PgTransaction<'a> {
    type Target = tokio_postgres::Transaction<'a>;
    fn deref(&self) -> &tokio_postgres::Transaction<'a> {
        &self.tx
    }
}

impl fmt::Debug for PgTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTransaction").finish_non_exhaustive()
    }
}
