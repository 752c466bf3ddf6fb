//! The pool's credential: the password (or the [`CredentialsProvider`] asked for one) its
//! connects use, the version of it each connection was opened with, and rotation to a
//! credential a caller presented and one connect verified.
//!
//! The pool key leaves the password out, so callers presenting different passwords for
//! the same key reach the same pool. A presented credential is compared with the pool's by
//! keyed hash ([`Secret::fingerprint`]) or, for a provider, by identity (the same `Arc`).
//! The same → the caller gets the pool. Different → one connect with it
//! ([`verify_credential`](PoolShared::verify_credential)): authenticated, it becomes the
//! pool's credential (new connects use it; connections of the old one are closed, idle
//! ones now and checked-out ones as they come back, through `Conn::outlived`); refused,
//! the caller gets the error and the pool is untouched.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::backends::Backend;
use crate::connection::ConnectionConfig;
use crate::error::BackendError;
use crate::secret::{Fingerprint, Secret};

/// What [`CredentialsProvider::password`] returns: a boxed future of the secret.
pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Secret, BackendError>> + Send + 'a>>;

/// Supplies the password of a pool's connects: asked at **each** connect (acquires,
/// warm-up, refills, the verification of a new credential), its secret replaces the
/// config's password for that connect. For rotating secrets (a vault) and short-lived
/// tokens (cloud IAM database tokens).
///
/// Register one per pool with
/// [`SupervisorHandle::pool_with_credentials`](crate::SupervisorHandle::pool_with_credentials)
/// or [`GetPool::with_credentials`](crate::messages::GetPool::with_credentials). A pool
/// knows its provider by identity: pass clones of one `Arc`, not a new one per call
/// (a different provider is verified with one connect, as a different password is).
///
/// An error is the connect's error: its [kind](crate::BackendErrorKind) decides whether the pool
/// retries (`Connect`, `Timeout`: yes; `Auth`, `Config`: no). Build its message without the
/// secret; the pool never adds it. The call runs inside the connect's timeout, and a panic
/// in it is caught like one in the backend's connect.
///
/// Any `Fn(&ConnectionConfig) -> impl Future<…> + 'static` is a provider.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use poolwarden::backends::sim::SimBackend;
/// use poolwarden::{
///     ConnectionConfig, CredentialsFuture, CredentialsProvider, Secret, SupervisorConfig,
///     SupervisorHandle,
/// };
///
/// /// Hands out a fresh token at each connect (a stand-in for a cloud IAM token).
/// struct Tokens(AtomicU32);
///
/// impl CredentialsProvider for Tokens {
///     fn password<'a>(&'a self, _config: &'a ConnectionConfig) -> CredentialsFuture<'a> {
///         Box::pin(async move {
///             let n = self.0.fetch_add(1, Ordering::Relaxed);
///             Ok(Secret::new(format!("token-{n}")))
///         })
///     }
/// }
///
/// # actix::System::new().block_on(async {
/// let sim = SimBackend::default();
/// let sup = SupervisorHandle::start(sim.clone(), SupervisorConfig::default())?;
/// let config = ConnectionConfig::sim("iam");
/// let tokens = Arc::new(Tokens(AtomicU32::new(0)));
/// let pool = sup.pool_with_credentials(config, None, tokens.clone()).await?;
/// drop(pool.acquire().await?);
/// assert!(tokens.0.load(Ordering::Relaxed) >= 1, "asked at the connect");
///
/// // A closure is a provider too.
/// let fixed = Arc::new(|_: &ConnectionConfig| async { Ok(Secret::new("s3cret")) });
/// let other = sup
///     .pool_with_credentials(ConnectionConfig::sim("fixed"), None, fixed)
///     .await?;
/// drop(other.acquire().await?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub trait CredentialsProvider: Send + Sync + 'static {
    /// The password for the next connect to `config` (the pool's config, as presented).
    fn password<'a>(&'a self, config: &'a ConnectionConfig) -> CredentialsFuture<'a>;
}

impl<F, Fut> CredentialsProvider for F
where
    F: Fn(&ConnectionConfig) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Secret, BackendError>> + Send + 'static,
{
    fn password<'a>(&'a self, config: &'a ConnectionConfig) -> CredentialsFuture<'a> {
        Box::pin(self(config))
    }
}

/// What a credential is compared by: never printed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Identity {
    /// No password at all.
    None,
    /// A password, by keyed hash.
    Password(Fingerprint),
    /// A provider, by the address of its `Arc` (kept alive by both sides compared, so
    /// never reused while they are).
    Provider(usize),
}

/// A credential as a caller presents it: its config (with the password) or a provider.
#[derive(Clone)]
pub(crate) struct Presented {
    config: ConnectionConfig,
    provider: Option<Arc<dyn CredentialsProvider>>,
    identity: Identity,
}

impl Presented {
    pub(crate) fn new(
        config: ConnectionConfig,
        provider: Option<Arc<dyn CredentialsProvider>>,
    ) -> Self {
        let identity = match (&provider, &config.password) {
            (Some(p), _) => Identity::Provider(Arc::as_ptr(p) as *const () as usize),
            (None, Some(pw)) => Identity::Password(pw.fingerprint()),
            (None, None) => Identity::None,
        };
        Self {
            config,
            provider,
            identity,
        }
    }
}

/// One credential a pool has held. Connections hold the version they were opened with;
/// handles, the version they were resolved with.
pub(crate) struct Version {
    epoch: u64,
    presented: Presented,
    /// A connect with it succeeded.
    verified: AtomicBool,
    /// Replaced by a newer one: connections opened with it are closed.
    retired: AtomicBool,
}

impl Version {
    /// A version not yet the pool's: what a presented credential is verified as.
    pub(crate) fn candidate(presented: Presented) -> Self {
        Self {
            epoch: u64::MAX,
            presented,
            verified: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        }
    }

    /// What was presented, to rotate to.
    pub(crate) fn into_presented(self) -> Presented {
        self.presented
    }

    /// Replaced by a newer credential: connections opened with it are closed.
    #[inline]
    pub(crate) fn retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// A connect with it succeeded.
    #[inline]
    pub(crate) fn verified(&self) -> bool {
        self.verified.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_verified(&self) {
        self.verified.store(true, Ordering::Relaxed);
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The config as presented (its password is the static credential).
    pub(crate) fn config(&self) -> &ConnectionConfig {
        &self.presented.config
    }

    pub(crate) fn provider(&self) -> Option<&Arc<dyn CredentialsProvider>> {
        self.presented.provider.as_ref()
    }

    /// Open one connection with this credential: the provider's secret replaces the
    /// config's password when there is a provider.
    pub(crate) async fn connect<B: Backend>(
        &self,
        backend: &B,
    ) -> Result<B::Connection, BackendError> {
        let config = match &self.presented.provider {
            None => Cow::Borrowed(&self.presented.config),
            Some(provider) => {
                let secret = provider.password(&self.presented.config).await?;
                let mut config = self.presented.config.clone();
                config.password = Some(secret);
                Cow::Owned(config)
            }
        };
        backend.connect(&config).await
    }
}

/// Epoch and flags only: never the password, the provider or the fingerprint.
impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialVersion")
            .field("epoch", &self.epoch)
            .field("provider", &self.presented.provider.is_some())
            .field("verified", &self.verified())
            .field("retired", &self.retired())
            .finish()
    }
}

/// The pool's current credential and how often it changed.
pub(crate) struct Credential {
    current: Mutex<Arc<Version>>,
    rotations: AtomicU64,
}

impl Credential {
    pub(crate) fn new(
        config: ConnectionConfig,
        provider: Option<Arc<dyn CredentialsProvider>>,
    ) -> Self {
        Self {
            current: Mutex::new(Arc::new(Version {
                epoch: 0,
                presented: Presented::new(config, provider),
                verified: AtomicBool::new(false),
                retired: AtomicBool::new(false),
            })),
            rotations: AtomicU64::new(0),
        }
    }

    /// What connects use now.
    pub(crate) fn current(&self) -> Arc<Version> {
        Arc::clone(&self.current.lock())
    }

    /// Times the credential was replaced.
    pub(crate) fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Relaxed)
    }

    /// The current version if `presented` is the same credential.
    pub(crate) fn same(&self, presented: &Presented) -> Option<Arc<Version>> {
        let current = self.current.lock();
        (current.presented.identity == presented.identity).then(|| Arc::clone(&current))
    }

    /// Make `presented`, just authenticated, the current credential (unless it already
    /// is: two callers verifying the same new password rotate once). Answers the current
    /// version and whether it changed.
    pub(crate) fn rotate(&self, presented: Presented) -> (Arc<Version>, bool) {
        let mut current = self.current.lock();
        if current.presented.identity == presented.identity {
            current.mark_verified();
            return (Arc::clone(&current), false);
        }
        let next = Arc::new(Version {
            epoch: current.epoch + 1,
            presented,
            verified: AtomicBool::new(true),
            retired: AtomicBool::new(false),
        });
        current.retired.store(true, Ordering::Release);
        *current = Arc::clone(&next);
        self.rotations.fetch_add(1, Ordering::Relaxed);
        (next, true)
    }

    /// Whether a handle resolved with `ticket` may be served: its credential authenticated
    /// once (then a rotation does not lock it out), or it is still the pool's (its
    /// connects will authenticate with it or fail). A credential that never authenticated
    /// and was replaced gets nothing opened with its successor.
    #[inline]
    pub(crate) fn admits(&self, ticket: &Version) -> bool {
        ticket.verified() || !ticket.retired()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_pw(pw: Option<&str>) -> ConnectionConfig {
        let mut c = ConnectionConfig::sim("cred");
        c.password = pw.map(Secret::new);
        c
    }

    #[test]
    fn same_password_same_credential_anything_else_differs() {
        let cred = Credential::new(with_pw(Some("a")), None);
        assert!(cred
            .same(&Presented::new(with_pw(Some("a")), None))
            .is_some());
        assert!(cred
            .same(&Presented::new(with_pw(Some("b")), None))
            .is_none());
        assert!(cred.same(&Presented::new(with_pw(None), None)).is_none());
        let p: Arc<dyn CredentialsProvider> =
            Arc::new(|_: &ConnectionConfig| async { Ok(Secret::new("a")) });
        assert!(cred
            .same(&Presented::new(with_pw(Some("a")), Some(p.clone())))
            .is_none());
        let by_provider = Credential::new(with_pw(None), Some(p.clone()));
        assert!(by_provider
            .same(&Presented::new(with_pw(None), Some(p)))
            .is_some());
    }

    #[test]
    fn rotation_retires_the_old_version_once() {
        let cred = Credential::new(with_pw(Some("a")), None);
        let old = cred.current();
        let (v1, rotated) = cred.rotate(Presented::new(with_pw(Some("b")), None));
        assert!(rotated && old.retired() && !v1.retired() && v1.verified());
        assert_eq!((v1.epoch(), cred.rotations()), (1, 1));
        // The same credential again: no second rotation.
        let (v2, rotated) = cred.rotate(Presented::new(with_pw(Some("b")), None));
        assert!(!rotated && Arc::ptr_eq(&v1, &v2));
        // A replaced credential that never authenticated admits nobody; one that did, does.
        assert!(!cred.admits(&old));
        old.mark_verified();
        assert!(cred.admits(&old));
    }

    #[test]
    fn debug_shows_neither_password_nor_fingerprint() {
        let cred = Credential::new(with_pw(Some("hunter2")), None);
        let v = cred.current();
        let shown = format!("{v:?} {v:#?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("Fingerprint"),
            "{shown}"
        );
        assert!(shown.contains("epoch"), "{shown}");
    }
}
