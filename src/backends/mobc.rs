//! Use any [`mobc::Manager`] as a poolwarden backend, unchanged: managers
//! from the mobc ecosystem (`mobc-redis`, `mobc-postgres`, `mobc-mongodb`…) or your own.
//!
//! As with the [bb8 adapter](super::bb8), one backend serves every pool: [`MobcBackend`]
//! takes a factory building a manager from a pool's [`ConnectionConfig`] and keeps one
//! manager per [`PoolKey`] (rebuilt if the same key comes back with another
//! password), or uses one fixed manager for every pool ([`MobcBackend::with_manager`]).
//!
//! | mobc | poolwarden |
//! |---|---|
//! | `connect` | [`connect`](Backend::connect), errors of kind [`Connect`](BackendErrorKind::Connect) |
//! | `check` | [`probe`](Backend::probe), errors of kind [`Query`](BackendErrorKind::Query) |
//! | `validate` (false) | [`is_broken`](Backend::is_broken) (true) |
//! | — | no reset: release stays synchronous |
//!
//! mobc's `check` takes the connection by value and gives it back on success. A failed
//! check consumes it, and so does a check whose future is dropped (a probe timeout): the
//! [`MobcConnection`] is then empty, [`is_broken`](Backend::is_broken) says so and the pool
//! closes it; the pool never hands out an empty one.
//!
//! Errors: the manager's error is the [`source`](std::error::Error::source) of the
//! [`BackendError`], its text (with any URL password and the config's password replaced by
//! `***`) is in the message; [`classify_errors`](MobcBackend::classify_errors) overrides the
//! kind. The manager's error type must be an `std::error::Error` (mobc already requires
//! `Send + Sync`).
//!
//! ```
//! use poolwarden::backends::mobc::MobcBackend;
//! use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
//!
//! /// A mobc manager as found in the wild: it knows nothing of poolwarden.
//! struct Greeter;
//!
//! #[mobc::async_trait]
//! impl mobc::Manager for Greeter {
//!     type Connection = Vec<String>;
//!     type Error = std::io::Error;
//!
//!     async fn connect(&self) -> Result<Vec<String>, std::io::Error> {
//!         Ok(vec!["hello".to_string()])
//!     }
//!     async fn check(&self, conn: Vec<String>) -> Result<Vec<String>, std::io::Error> {
//!         Ok(conn)
//!     }
//! }
//!
//! # actix::System::new().block_on(async {
//! let sup = SupervisorHandle::start(MobcBackend::with_manager(Greeter), SupervisorConfig::default())?;
//! let pool = sup.pool(ConnectionConfig::new("greeter", "local", 1)).await?;
//! let mut conn = pool.acquire().await?;
//! conn.push("world".into()); // derefs to the manager's connection
//! assert_eq!(conn.join(" "), "hello world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use ::mobc::Manager;

use super::adapter::{debug_connection, Adapter, CheckFailed, Wrapped};
use crate::backends::Backend;
use crate::connection::ConnectionConfig;
use crate::error::{BackendError, BackendErrorKind};
use crate::key::PoolKey;

/// A [`Backend`] running any [`mobc::Manager`].
///
/// See the [module documentation](self).
pub struct MobcBackend<M: Manager> {
    inner: Adapter<M, M::Error>,
}

impl<M: Manager> MobcBackend<M> {
    /// A backend building one manager per pool with `factory`, from the pool's config.
    ///
    /// The factory runs on a pool's first connect (and again after
    /// [`forget`](Self::forget), or when the config's password changed); its error fails
    /// that connect as it is.
    pub fn new(
        factory: impl Fn(&ConnectionConfig) -> Result<M, BackendError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: Adapter::per_key(factory),
        }
    }

    /// A backend using `manager` for every pool, whatever its config.
    pub fn with_manager(manager: M) -> Self {
        Self {
            inner: Adapter::fixed(manager),
        }
    }

    /// Decide the [`BackendErrorKind`] of manager errors: return `Some(kind)` to override
    /// the default ([`Connect`](BackendErrorKind::Connect) for connect errors,
    /// [`Query`](BackendErrorKind::Query) for `check` errors).
    pub fn classify_errors(
        mut self,
        classify: impl Fn(&M::Error) -> Option<BackendErrorKind> + Send + Sync + 'static,
    ) -> Self {
        self.inner.set_classifier(classify);
        self
    }

    /// The manager serving `config` (built now if needed).
    pub fn manager(&self, config: &ConnectionConfig) -> Result<Arc<M>, BackendError> {
        self.inner.managers.get(config)
    }

    /// Forget the cached manager of `key`. Returns whether one was cached.
    pub fn forget(&self, key: &PoolKey) -> bool {
        self.inner.managers.forget(key)
    }

    /// How many managers are cached (1 for [`with_manager`](Self::with_manager)).
    pub fn cached_managers(&self) -> usize {
        self.inner.managers.len()
    }
}

impl<M: Manager> fmt::Debug for MobcBackend<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_backend(f, "MobcBackend")
    }
}

/// A connection opened by a mobc manager, with the manager that opened it.
///
/// Dereferences to the manager's connection. It is empty only after a failed or abandoned
/// `check`, and the pool never hands out an empty one; dereferencing an empty one panics.
pub struct MobcConnection<M: Manager> {
    conn: Option<M::Connection>,
    manager: Arc<M>,
}

impl<M: Manager> MobcConnection<M> {
    /// The manager that opened this connection.
    pub fn manager(&self) -> &M {
        &self.manager
    }

    /// The manager's connection, if a failed check did not consume it.
    pub fn into_inner(self) -> Option<M::Connection> {
        self.conn
    }

    /// Whether a failed or abandoned check consumed the connection.
    pub fn is_empty(&self) -> bool {
        self.conn.is_none()
    }
}

const EMPTY: &str = "mobc connection consumed by a failed check; the pool never hands one out";

impl<M: Manager> Deref for MobcConnection<M> {
    type Target = M::Connection;
    fn deref(&self) -> &M::Connection {
        self.conn.as_ref().expect(EMPTY)
    }
}

impl<M: Manager> DerefMut for MobcConnection<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        self.conn.as_mut().expect(EMPTY)
    }
}

impl<M: Manager> fmt::Debug for MobcConnection<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_connection::<M>(f, "MobcConnection")
            .field("empty", &self.conn.is_none())
            .finish_non_exhaustive()
    }
}

impl<M> Wrapped for MobcConnection<M>
where
    M: Manager,
    M::Error: StdError,
{
    type Manager = M;
    type Error = M::Error;

    const WHO: &'static str = "mobc manager";
    const CHECK_FAILED: &'static str = "mobc manager's check failed";

    async fn open(manager: Arc<M>) -> Result<Self, M::Error> {
        let conn = manager.connect().await?;
        Ok(MobcConnection {
            conn: Some(conn),
            manager,
        })
    }

    async fn check(&mut self) -> Result<(), CheckFailed<M::Error>> {
        let Some(raw) = self.conn.take() else {
            return Err(CheckFailed::Unchecked(BackendError::new(
                BackendErrorKind::Closed,
                "the connection was consumed by an earlier failed check",
            )));
        };
        // If this future is dropped here, `self.conn` stays empty: the connection is broken.
        let raw = self
            .manager
            .check(raw)
            .await
            .map_err(CheckFailed::Manager)?;
        self.conn = Some(raw);
        Ok(())
    }

    fn is_broken(&mut self) -> bool {
        let MobcConnection { conn, manager } = self;
        match conn {
            Some(raw) => !manager.validate(raw),
            None => true,
        }
    }
}

impl<M> Backend for MobcBackend<M>
where
    M: Manager,
    M::Error: StdError,
{
    type Connection = MobcConnection<M>;

    async fn connect(&self, config: &ConnectionConfig) -> Result<MobcConnection<M>, BackendError> {
        self.inner.connect(config).await
    }

    async fn probe(&self, conn: &mut MobcConnection<M>) -> Result<(), BackendError> {
        self.inner.probe(conn).await
    }

    fn needs_reset(&self, _conn: &MobcConnection<M>) -> bool {
        false
    }

    fn is_broken(&self, conn: &mut MobcConnection<M>) -> bool {
        conn.is_broken()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Nope;
    impl fmt::Display for Nope {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("nope")
        }
    }
    impl StdError for Nope {}

    /// Connections are numbers; `check` fails odd ones, `validate` fails those above 100;
    /// `check` of 42 never finishes.
    struct Numbers(i32);

    #[::mobc::async_trait]
    impl Manager for Numbers {
        type Connection = i32;
        type Error = Nope;
        async fn connect(&self) -> Result<i32, Nope> {
            if self.0 < 0 {
                return Err(Nope);
            }
            Ok(self.0)
        }
        async fn check(&self, conn: i32) -> Result<i32, Nope> {
            if conn == 42 {
                futures::future::pending::<()>().await;
            }
            if conn % 2 == 0 {
                Ok(conn)
            } else {
                Err(Nope)
            }
        }
        fn validate(&self, conn: &mut i32) -> bool {
            *conn <= 100
        }
    }

    fn numbers(cfg: &ConnectionConfig) -> Result<Numbers, BackendError> {
        Ok(Numbers(i32::from(cfg.hosts[0].port) - 1000))
    }

    #[tokio::test]
    async fn the_calls_map_through() {
        let b = MobcBackend::new(numbers);
        let mut even = b
            .connect(&ConnectionConfig::new("n", "h", 1002))
            .await
            .unwrap();
        assert_eq!(*even, 2);
        b.probe(&mut even).await.unwrap();
        assert_eq!(*even, 2, "check gives the connection back");
        assert!(!b.is_broken(&mut even) && !b.needs_reset(&even));
        *even = 200;
        assert!(b.is_broken(&mut even), "validate false: broken");

        let mut odd = b
            .connect(&ConnectionConfig::new("n", "h", 1003))
            .await
            .unwrap();
        let err = b.probe(&mut odd).await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Query);
        assert_eq!(err.source().unwrap().to_string(), "nope");
        assert!(odd.is_empty() && b.is_broken(&mut odd));
        assert_eq!(
            b.probe(&mut odd).await.unwrap_err().kind(),
            BackendErrorKind::Closed
        );
        assert_eq!(b.cached_managers(), 2);

        let err = b
            .connect(&ConnectionConfig::new("n", "h", 1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Connect);
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[tokio::test]
    async fn an_abandoned_check_breaks_the_connection() {
        let b = MobcBackend::with_manager(Numbers(42));
        let mut conn = b
            .connect(&ConnectionConfig::new("n", "h", 1))
            .await
            .unwrap();
        let timed_out =
            tokio::time::timeout(std::time::Duration::from_millis(10), b.probe(&mut conn)).await;
        assert!(timed_out.is_err());
        assert!(b.is_broken(&mut conn));
        assert!(conn.into_inner().is_none());
    }
}
