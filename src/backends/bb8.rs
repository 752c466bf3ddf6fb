//! Use any [`bb8::ManageConnection`] as a poolwarden backend,
//! unchanged: managers from the bb8 ecosystem (`bb8-redis`, `bb8-postgres`, `bb8-tiberius`…)
//! or your own.
//!
//! One [`Backend`] value serves every pool of a supervisor, each pool with its own
//! [`ConnectionConfig`]; a bb8 manager is bound to one endpoint. So [`Bb8Backend`] takes a
//! *factory* building a manager from a pool's config and keeps one manager per
//! [`PoolKey`] (rebuilt if the same key comes back with another password).
//! For a single endpoint, [`Bb8Backend::with_manager`] uses one fixed manager for every pool.
//!
//! | bb8 | poolwarden |
//! |---|---|
//! | `connect` | [`connect`](Backend::connect), errors of kind [`Connect`](BackendErrorKind::Connect) |
//! | `is_valid` | [`probe`](Backend::probe), errors of kind [`Query`](BackendErrorKind::Query) |
//! | `has_broken` | [`is_broken`](Backend::is_broken) |
//! | — | no reset: release stays synchronous |
//!
//! The manager's error is the [`source`](std::error::Error::source) of the
//! [`BackendError`]; the message repeats its text with any URL password and the config's
//! password replaced by `***`. Connect errors are retried by the pool unless
//! [`classify_errors`](Bb8Backend::classify_errors) says otherwise (e.g. an authentication
//! failure). The manager's error type must be an `std::error::Error + Send + Sync` (as the
//! errors of every published manager are).
//!
//! Connections are [`Bb8Connection`]s: they dereference to the manager's connection and
//! remember the manager that opened them.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use poolwarden::backends::bb8::Bb8Backend;
//! use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
//!
//! /// A bb8 manager as found in the wild: it knows nothing of poolwarden.
//! struct Counter {
//!     prefix: String,
//!     opened: AtomicU64,
//! }
//!
//! impl bb8::ManageConnection for Counter {
//!     type Connection = String;
//!     type Error = std::io::Error;
//!
//!     async fn connect(&self) -> Result<String, std::io::Error> {
//!         let n = self.opened.fetch_add(1, Ordering::Relaxed);
//!         Ok(format!("{}#{n}", self.prefix))
//!     }
//!     async fn is_valid(&self, _conn: &mut String) -> Result<(), std::io::Error> {
//!         Ok(())
//!     }
//!     fn has_broken(&self, conn: &mut String) -> bool {
//!         conn.ends_with("!")
//!     }
//! }
//!
//! # actix::System::new().block_on(async {
//! // One manager per pool, built from that pool's config.
//! let backend = Bb8Backend::new(|cfg: &ConnectionConfig| {
//!     Ok(Counter { prefix: cfg.primary_host(), opened: AtomicU64::new(0) })
//! });
//! let sup = SupervisorHandle::start(backend, SupervisorConfig::default())?;
//! let pool = sup.pool(ConnectionConfig::new("counter", "db1", 7)).await?;
//! let conn = pool.acquire().await?;
//! assert!(conn.starts_with("db1:7#")); // derefs to the manager's connection
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use ::bb8::ManageConnection;

use super::adapter::{debug_connection, Adapter, CheckFailed, Wrapped};
use crate::backends::Backend;
use crate::connection::ConnectionConfig;
use crate::error::{BackendError, BackendErrorKind};
use crate::key::PoolKey;

/// A [`Backend`] running any [`bb8::ManageConnection`].
///
/// See the [module documentation](self).
pub struct Bb8Backend<M: ManageConnection> {
    inner: Adapter<M, M::Error>,
}

impl<M: ManageConnection> Bb8Backend<M> {
    /// A backend building one manager per pool with `factory`, from the pool's config.
    ///
    /// The factory runs on a pool's first connect (and again after
    /// [`forget`](Self::forget), or when the config's password changed); its error fails
    /// that connect as it is, so give it a kind ([`Config`](BackendErrorKind::Config) for a
    /// config the manager cannot use: not retried).
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
    /// [`Query`](BackendErrorKind::Query) for `is_valid` errors). Return
    /// [`Auth`](BackendErrorKind::Auth) or [`Config`](BackendErrorKind::Config) for errors
    /// that retrying cannot fix.
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

    /// Forget the cached manager of `key` (e.g. after its pool was closed). Open
    /// connections keep theirs; the next connect builds a new one. Returns whether one was
    /// cached.
    pub fn forget(&self, key: &PoolKey) -> bool {
        self.inner.managers.forget(key)
    }

    /// How many managers are cached (1 for [`with_manager`](Self::with_manager)).
    pub fn cached_managers(&self) -> usize {
        self.inner.managers.len()
    }
}

impl<M: ManageConnection> fmt::Debug for Bb8Backend<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_backend(f, "Bb8Backend")
    }
}

/// A connection opened by a bb8 manager, with the manager that opened it.
///
/// Dereferences to the manager's connection.
pub struct Bb8Connection<M: ManageConnection> {
    conn: M::Connection,
    manager: Arc<M>,
}

impl<M: ManageConnection> Bb8Connection<M> {
    /// The manager that opened this connection.
    pub fn manager(&self) -> &M {
        &self.manager
    }

    /// The manager's connection, taken out of the pool's wrapper.
    pub fn into_inner(self) -> M::Connection {
        self.conn
    }
}

impl<M: ManageConnection> Deref for Bb8Connection<M> {
    type Target = M::Connection;
    fn deref(&self) -> &M::Connection {
        &self.conn
    }
}

impl<M: ManageConnection> DerefMut for Bb8Connection<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self.conn
    }
}

impl<M: ManageConnection> fmt::Debug for Bb8Connection<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_connection::<M>(f, "Bb8Connection").finish_non_exhaustive()
    }
}

impl<M> Wrapped for Bb8Connection<M>
where
    M: ManageConnection,
    M::Error: StdError + Send + Sync + 'static,
{
    type Manager = M;
    type Error = M::Error;

    const WHO: &'static str = "bb8 manager";
    const CHECK_FAILED: &'static str = "bb8 manager found the connection invalid";

    async fn open(manager: Arc<M>) -> Result<Self, M::Error> {
        let conn = manager.connect().await?;
        Ok(Bb8Connection { conn, manager })
    }

    async fn check(&mut self) -> Result<(), CheckFailed<M::Error>> {
        let Bb8Connection { conn, manager } = self;
        manager.is_valid(conn).await.map_err(CheckFailed::Manager)
    }

    fn is_broken(&mut self) -> bool {
        let Bb8Connection { conn, manager } = self;
        manager.has_broken(conn)
    }
}

impl<M> Backend for Bb8Backend<M>
where
    M: ManageConnection,
    M::Error: StdError + Send + Sync + 'static,
{
    type Connection = Bb8Connection<M>;

    async fn connect(&self, config: &ConnectionConfig) -> Result<Bb8Connection<M>, BackendError> {
        self.inner.connect(config).await
    }

    async fn probe(&self, conn: &mut Bb8Connection<M>) -> Result<(), BackendError> {
        self.inner.probe(conn).await
    }

    fn needs_reset(&self, _conn: &Bb8Connection<M>) -> bool {
        false
    }

    fn is_broken(&self, conn: &mut Bb8Connection<M>) -> bool {
        conn.is_broken()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::secret::Secret;

    #[derive(Debug)]
    struct Fails(String);
    impl fmt::Display for Fails {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl StdError for Fails {}

    /// Fails to connect with a message echoing its URL; connections are numbers; odd
    /// numbers are invalid, numbers above 100 broken.
    struct Manager {
        url: String,
        fail: bool,
        next: AtomicUsize,
    }

    impl ManageConnection for Manager {
        type Connection = usize;
        type Error = Fails;
        async fn connect(&self) -> Result<usize, Fails> {
            if self.fail {
                return Err(Fails(format!("cannot reach {}", self.url)));
            }
            Ok(self.next.fetch_add(1, Ordering::Relaxed))
        }
        async fn is_valid(&self, conn: &mut usize) -> Result<(), Fails> {
            match *conn % 2 {
                0 => Ok(()),
                _ => Err(Fails("odd".into())),
            }
        }
        fn has_broken(&self, conn: &mut usize) -> bool {
            *conn > 100
        }
    }

    fn factory(cfg: &ConnectionConfig) -> Result<Manager, BackendError> {
        Ok(Manager {
            url: format!(
                "x://u:{}@{}",
                cfg.password.as_ref().map(Secret::expose).unwrap_or(""),
                cfg.primary_host()
            ),
            fail: cfg.options.contains_key("fail"),
            next: AtomicUsize::new(0),
        })
    }

    #[tokio::test]
    async fn one_manager_per_key_and_the_calls_map_through() {
        let b = Bb8Backend::new(factory);
        let a = ConnectionConfig::new("x", "a", 1);
        let mut c0 = b.connect(&a).await.unwrap();
        let mut c1 = b.connect(&a).await.unwrap();
        assert_eq!((*c0, *c1), (0, 1), "same manager: shared counter");
        let other = b
            .connect(&ConnectionConfig::new("x", "b", 1))
            .await
            .unwrap();
        assert_eq!(*other, 0, "another key, another manager");
        assert_eq!(b.cached_managers(), 2);

        b.probe(&mut c0).await.unwrap();
        let err = b.probe(&mut c1).await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Query);
        assert_eq!(err.source().unwrap().to_string(), "odd");
        assert!(!b.needs_reset(&c0));
        assert!(!b.is_broken(&mut c0));
        *c0 = 101;
        assert!(b.is_broken(&mut c0));

        assert!(b.forget(&PoolKey::of(&a)));
        assert!(!b.forget(&PoolKey::of(&a)));
        assert_eq!(*b.connect(&a).await.unwrap(), 0, "rebuilt after forget");
    }

    #[tokio::test]
    async fn connect_errors_are_redacted_and_classified() {
        let mut cfg = ConnectionConfig::new("x", "a", 1);
        cfg.password = Some(Secret::new("hunter2"));
        cfg.options.insert("fail".into(), "1".into());

        let b = Bb8Backend::new(factory);
        let err = b.connect(&cfg).await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Connect);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("x://u:***@a:1"), "{shown}");

        let b = Bb8Backend::new(factory)
            .classify_errors(|e: &Fails| e.0.contains("cannot").then_some(BackendErrorKind::Auth));
        let err = b.connect(&cfg).await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Auth);
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn a_rotated_password_rebuilds_the_manager() {
        let b = Bb8Backend::new(factory);
        let mut cfg = ConnectionConfig::new("x", "a", 1);
        cfg.password = Some(Secret::new("one"));
        let first = b.manager(&cfg).unwrap();
        assert!(Arc::ptr_eq(&first, &b.manager(&cfg).unwrap()));
        cfg.password = Some(Secret::new("two"));
        let second = b.manager(&cfg).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(second.url.contains("two"));
        assert_eq!(b.cached_managers(), 1);
    }

    #[tokio::test]
    async fn a_fixed_manager_serves_every_config() {
        let b = Bb8Backend::with_manager(Manager {
            url: "x://h".into(),
            fail: false,
            next: AtomicUsize::new(7),
        });
        let a = b
            .connect(&ConnectionConfig::new("x", "a", 1))
            .await
            .unwrap();
        let c = b
            .connect(&ConnectionConfig::new("x", "c", 1))
            .await
            .unwrap();
        assert_eq!((*a, *c), (7, 8));
        assert_eq!(a.manager().url, "x://h");
        assert_eq!(b.cached_managers(), 1);
        assert!(!b.forget(&PoolKey::of(&ConnectionConfig::new("x", "a", 1))));
        assert_eq!(c.into_inner(), 8);
        assert!(format!("{b:?}").contains("Fixed"));
    }
}
