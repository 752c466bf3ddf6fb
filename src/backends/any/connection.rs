//! [`AnyConnection`]: the connection of whichever backend a pool's scheme chose, with typed
//! access to it.

use std::fmt;

use crate::backends::sim::SimConnection;

#[cfg(feature = "mysql")]
use crate::backends::mysql::MysqlConnection;
#[cfg(feature = "postgres")]
use crate::backends::postgres::PgConnection;
#[cfg(feature = "redis")]
use crate::backends::redis::RedisConnection;
#[cfg(feature = "sqlite")]
use crate::backends::sqlite::SqliteConnection;

/// A connection opened by [`AnyBackend`](super::AnyBackend). Match on it, or take the kind
/// you expect with `as_postgres()`, `as_redis()`, `as_mysql()`, `as_sqlite()`, `as_sim()`
/// (`None` for another kind). The variants present depend on the enabled features.
///
/// ```
/// use poolwarden::backends::any::{AnyBackend, AnyConnection};
/// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
///
/// # actix::System::new().block_on(async {
/// let sup = SupervisorHandle::start(AnyBackend::default(), SupervisorConfig::default())?;
/// let pool = sup.pool(ConnectionConfig::parse("sim://cache/0")?).await?;
/// let mut conn = pool.acquire().await?;
/// assert_eq!(conn.kind(), "sim");
/// assert!(conn.as_postgres().is_none());
/// if let AnyConnection::Sim(sim) = &mut *conn {
///     sim.query("PING").await?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[non_exhaustive]
pub enum AnyConnection {
    /// `postgres://` (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(PgConnection),
    /// `redis://`, `rediss://` (feature `redis`).
    #[cfg(feature = "redis")]
    Redis(RedisConnection),
    /// `mysql://`, `mariadb://` (feature `mysql`).
    #[cfg(feature = "mysql")]
    Mysql(MysqlConnection),
    /// `sqlite:` (feature `sqlite`).
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteConnection),
    /// `sim://`.
    Sim(SimConnection),
}

impl AnyConnection {
    /// The backend that opened it: `postgres`, `redis`, `mysql`, `sqlite` or `sim`.
    ///
    /// ```
    /// use poolwarden::backends::any::AnyBackend;
    /// use poolwarden::{Backend, ConnectionConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = AnyBackend::default().connect(&ConnectionConfig::parse("sim://db1/app")?).await?;
    /// assert_eq!(conn.kind(), "sim");
    /// # Ok(())
    /// # }
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres(_) => "postgres",
            #[cfg(feature = "redis")]
            AnyConnection::Redis(_) => "redis",
            #[cfg(feature = "mysql")]
            AnyConnection::Mysql(_) => "mysql",
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite(_) => "sqlite",
            AnyConnection::Sim(_) => "sim",
        }
    }
}

/// `as_x()`: the connection if it is of that kind.
macro_rules! accessor {
    ($(#[$cfg:meta])* $name:ident, $variant:ident, $ty:ty, $scheme:literal) => {
        impl AnyConnection {
            #[doc = concat!("The connection if this is a `", $scheme, "` one, else `None`.")]
            $(#[$cfg])*
            pub fn $name(&mut self) -> Option<&mut $ty> {
                match self {
                    AnyConnection::$variant(c) => Some(c),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
    };
}

accessor!(
    #[cfg(feature = "postgres")]
    as_postgres,
    Postgres,
    PgConnection,
    "postgres://"
);
accessor!(
    #[cfg(feature = "redis")]
    as_redis,
    Redis,
    RedisConnection,
    "redis://"
);
accessor!(
    #[cfg(feature = "mysql")]
    as_mysql,
    Mysql,
    MysqlConnection,
    "mysql://"
);
accessor!(
    #[cfg(feature = "sqlite")]
    as_sqlite,
    Sqlite,
    SqliteConnection,
    "sqlite:"
);
accessor!(as_sim, Sim, SimConnection, "sim://");

/// The kind only: a connection's `Debug` never shows its config.
impl fmt::Debug for AnyConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnyConnection({})", self.kind())
    }
}
