//! `impl Backend for AnyBackend`: dispatch on the config's scheme when connecting, on the
//! connection's kind afterwards.

use super::connection::AnyConnection;
use crate::backends::sim::SimBackend;
use crate::backends::{Backend, MemberStatus};
use crate::connection::ConnectionConfig;
use crate::error::{BackendError, BackendErrorKind};

#[cfg(feature = "mysql")]
use crate::backends::mysql::MysqlBackend;
#[cfg(feature = "postgres")]
use crate::backends::postgres::PostgresBackend;
#[cfg(feature = "redis")]
use crate::backends::redis::RedisBackend;
#[cfg(feature = "sqlite")]
use crate::backends::sqlite::SqliteBackend;

/// Every backend this build serves, chosen per pool by the connection config's scheme. See
/// the [module documentation](super).
///
/// [`Default`] gives each backend its default and an empty simulated world;
/// [`with_sim`](Self::with_sim) shares a simulated world you also hold (to inject faults).
///
/// ```
/// use poolwarden::backends::any::AnyBackend;
/// use poolwarden::backends::sim::SimBackend;
///
/// let sim = SimBackend::new(7);
/// let any = AnyBackend::default().with_sim(sim.clone());
/// let _same_world: &SimBackend = any.sim();
/// assert!(AnyBackend::schemes().contains(&"sim"));
/// ```
#[derive(Clone, Default)]
pub struct AnyBackend {
    #[cfg(feature = "postgres")]
    postgres: PostgresBackend,
    #[cfg(feature = "redis")]
    redis: RedisBackend,
    #[cfg(feature = "mysql")]
    mysql: MysqlBackend,
    #[cfg(feature = "sqlite")]
    sqlite: SqliteBackend,
    sim: SimBackend,
}

/// Schemes of backends that may be compiled out, with the feature that enables each.
const OPTIONAL: &[(&str, &str)] = &[
    ("postgres", "postgres"),
    ("postgresql", "postgres"),
    ("redis", "redis"),
    ("mysql", "mysql"),
    ("sqlite", "sqlite"),
];

impl AnyBackend {
    /// Share `sim`'s simulated world for `sim://` pools.
    ///
    /// ```
    /// use poolwarden::backends::any::AnyBackend;
    /// use poolwarden::backends::sim::SimBackend;
    ///
    /// let sim = SimBackend::new(7);
    /// let any = AnyBackend::default().with_sim(sim.clone());
    /// // Faults injected through `sim` reach the `sim://` pools of `any`.
    /// sim.server("db1:1").refuse_new_connections(true);
    /// ```
    pub fn with_sim(mut self, sim: SimBackend) -> Self {
        self.sim = sim;
        self
    }

    /// The simulated world `sim://` pools connect to.
    ///
    /// ```
    /// use poolwarden::backends::any::AnyBackend;
    ///
    /// let any = AnyBackend::default();
    /// any.sim().server("db1:1").refuse_new_connections(false);
    /// ```
    pub fn sim(&self) -> &SimBackend {
        &self.sim
    }

    /// The config `backend` names this build opens (`rediss://` and `mariadb://` parse to
    /// `redis` and `mysql`).
    ///
    /// ```
    /// use poolwarden::backends::any::AnyBackend;
    /// assert!(AnyBackend::schemes().contains(&"sim"));
    /// ```
    pub fn schemes() -> &'static [&'static str] {
        &[
            #[cfg(feature = "postgres")]
            "postgres",
            #[cfg(feature = "postgres")]
            "postgresql",
            #[cfg(feature = "redis")]
            "redis",
            #[cfg(feature = "mysql")]
            "mysql",
            #[cfg(feature = "sqlite")]
            "sqlite",
            "sim",
        ]
    }
}

fn unsupported(backend: &str) -> BackendError {
    let message = match OPTIONAL.iter().find(|(scheme, _)| *scheme == backend) {
        Some((_, feature)) => format!(
            "`{backend}` connections need the poolwarden feature \"{feature}\", which this build does not enable"
        ),
        None => format!(
            "no backend opens `{backend}` connections (this build opens: {})",
            AnyBackend::schemes().join(", ")
        ),
    };
    BackendError::new(BackendErrorKind::Config, message)
}

/// Run `$body` with `$b` bound to the backend and `$c` to the connection of the same kind.
macro_rules! dispatch {
    ($self:ident, $conn:expr, |$b:ident, $c:ident| $body:expr) => {
        match $conn {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres($c) => {
                let $b = &$self.postgres;
                $body
            }
            #[cfg(feature = "redis")]
            AnyConnection::Redis($c) => {
                let $b = &$self.redis;
                $body
            }
            #[cfg(feature = "mysql")]
            AnyConnection::Mysql($c) => {
                let $b = &$self.mysql;
                $body
            }
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite($c) => {
                let $b = &$self.sqlite;
                $body
            }
            AnyConnection::Sim($c) => {
                let $b = &$self.sim;
                $body
            }
        }
    };
}

impl Backend for AnyBackend {
    type Connection = AnyConnection;

    async fn connect(&self, config: &ConnectionConfig) -> Result<AnyConnection, BackendError> {
        match config.backend.as_str() {
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => self
                .postgres
                .connect(config)
                .await
                .map(AnyConnection::Postgres),
            #[cfg(feature = "redis")]
            "redis" => self.redis.connect(config).await.map(AnyConnection::Redis),
            #[cfg(feature = "mysql")]
            "mysql" => self.mysql.connect(config).await.map(AnyConnection::Mysql),
            #[cfg(feature = "sqlite")]
            "sqlite" => self.sqlite.connect(config).await.map(AnyConnection::Sqlite),
            "sim" => self.sim.connect(config).await.map(AnyConnection::Sim),
            other => Err(unsupported(other)),
        }
    }

    async fn probe(&self, conn: &mut AnyConnection) -> Result<(), BackendError> {
        dispatch!(self, conn, |b, c| b.probe(c).await)
    }

    fn needs_reset(&self, conn: &AnyConnection) -> bool {
        dispatch!(self, conn, |b, c| b.needs_reset(c))
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), BackendError> {
        dispatch!(self, conn, |b, c| b.reset(c).await)
    }

    fn is_broken(&self, conn: &mut AnyConnection) -> bool {
        dispatch!(self, conn, |b, c| b.is_broken(c))
    }

    async fn status(&self, conn: &mut AnyConnection) -> Result<Option<MemberStatus>, BackendError> {
        dispatch!(self, conn, |b, c| b.status(c).await)
    }

    async fn write_position(&self, conn: &mut AnyConnection) -> Result<Option<u64>, BackendError> {
        dispatch!(self, conn, |b, c| b.write_position(c).await)
    }
}
