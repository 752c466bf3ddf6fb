//! The facade the bb8 and mobc adapters share, written once.
//!
//! Each adapter wraps its crate's connection with the manager that opened it and says, by
//! implementing [`Wrapped`] for that wrapper, how its manager opens, checks and judges a
//! connection. [`Adapter`] does the rest: one manager per pool ([`ManagerCache`]), the
//! classification of manager errors, and the mapping of connect and check failures to
//! [`BackendError`]s (the manager's error as the source, its text redacted in the message).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::support::{redact, ManagerCache};
use crate::connection::ConnectionConfig;
use crate::error::{BackendError, BackendErrorKind};
use crate::secret::Secret;

/// A connection of a pool crate's manager, kept with that manager: what an adapter says
/// about its crate.
pub(crate) trait Wrapped: Sized + Send + 'static {
    /// The pool crate's manager.
    type Manager: Send + Sync + 'static;
    /// The manager's error.
    type Error: StdError + Send + Sync + 'static;

    /// Who failed, in connect errors: "`WHO` could not connect to <host>: …".
    const WHO: &'static str;
    /// A failed check's message, before the manager's error text.
    const CHECK_FAILED: &'static str;

    /// Open a connection with `manager`.
    fn open(manager: Arc<Self::Manager>) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// Run the manager's check of this connection.
    fn check(&mut self) -> impl Future<Output = Result<(), CheckFailed<Self::Error>>> + Send;

    /// Whether the connection is known to be unusable.
    fn is_broken(&mut self) -> bool;
}

/// Why a [`Wrapped::check`] failed.
pub(crate) enum CheckFailed<E> {
    /// The manager's check failed with this error.
    Manager(E),
    /// No check could run; the error is returned as it is.
    #[cfg_attr(not(feature = "mobc"), allow(dead_code))]
    Unchecked(BackendError),
}

/// Decides the kind of a manager error (`None`: the default kind).
pub(crate) type Classifier<E> = dyn Fn(&E) -> Option<BackendErrorKind> + Send + Sync;

/// What the bb8 and mobc backends hold: their managers and how their errors are
/// classified.
pub(crate) struct Adapter<M, E> {
    pub(crate) managers: ManagerCache<M>,
    classify: Option<Box<Classifier<E>>>,
}

impl<M, E> Adapter<M, E> {
    /// One manager per pool key, built by `factory`.
    pub(crate) fn per_key(
        factory: impl Fn(&ConnectionConfig) -> Result<M, BackendError> + Send + Sync + 'static,
    ) -> Self {
        Self::with(ManagerCache::per_key(factory))
    }

    /// `manager` for every pool.
    pub(crate) fn fixed(manager: M) -> Self {
        Self::with(ManagerCache::fixed(manager))
    }

    fn with(managers: ManagerCache<M>) -> Self {
        Self {
            managers,
            classify: None,
        }
    }

    pub(crate) fn set_classifier(
        &mut self,
        classify: impl Fn(&E) -> Option<BackendErrorKind> + Send + Sync + 'static,
    ) {
        self.classify = Some(Box::new(classify));
    }

    /// The `Debug` output of the backend called `name`.
    pub(crate) fn fmt_backend(&self, f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
        f.debug_struct(name)
            .field("manager", &std::any::type_name::<M>())
            .field("managers", &self.managers)
            .finish_non_exhaustive()
    }
}

impl<M, E> Adapter<M, E>
where
    E: StdError + Send + Sync + 'static,
{
    /// Open a connection with the manager serving `config`.
    pub(crate) async fn connect<C>(&self, config: &ConnectionConfig) -> Result<C, BackendError>
    where
        C: Wrapped<Manager = M, Error = E>,
    {
        let manager = self.managers.get(config)?;
        C::open(manager).await.map_err(|e| {
            self.error(
                e,
                BackendErrorKind::Connect,
                config.password.as_ref(),
                |text| {
                    format!(
                        "{} could not connect to {}: {text}",
                        C::WHO,
                        config.primary_host()
                    )
                },
            )
        })
    }

    /// Run the manager's check of `conn`.
    pub(crate) async fn probe<C>(&self, conn: &mut C) -> Result<(), BackendError>
    where
        C: Wrapped<Manager = M, Error = E>,
    {
        conn.check().await.map_err(|failed| match failed {
            CheckFailed::Manager(e) => self.error(e, BackendErrorKind::Query, None, |text| {
                format!("{}: {text}", C::CHECK_FAILED)
            }),
            CheckFailed::Unchecked(e) => e,
        })
    }

    /// `err` as a backend error: of the classifier's kind, else `default`, with `message`
    /// built from its text (`password` and URL passwords redacted) and `err` as the source.
    fn error(
        &self,
        err: E,
        default: BackendErrorKind,
        password: Option<&Secret>,
        message: impl FnOnce(&str) -> String,
    ) -> BackendError {
        let kind = self
            .classify
            .as_ref()
            .and_then(|c| c(&err))
            .unwrap_or(default);
        let text = redact(&err.to_string(), password);
        BackendError::new(kind, message(&text)).with_source(err)
    }
}

/// The start of the `Debug` output of an adapter's connection called `name`, opened by a
/// manager of type `M`.
pub(crate) fn debug_connection<'a, 'b, M>(
    f: &'a mut fmt::Formatter<'b>,
    name: &str,
) -> fmt::DebugStruct<'a, 'b> {
    let mut d = f.debug_struct(name);
    d.field("manager", &std::any::type_name::<M>());
    d
}
