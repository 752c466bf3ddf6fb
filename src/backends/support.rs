//! Helpers shared by the driver backends and the bb8 / mobc adapters.
//!
//! - [`redact`] scrubs secrets out of driver error texts before they become poolwarden error
//!   messages: drivers' `Display` may echo a connection URL (`redis://:pw@host`) or, rarely,
//!   the password itself. Every backend error message built from a driver's text goes
//!   through it.
//! - [`chain`] walks an error's sources, inside `io::Error`s too.
//! - [`ManagerCache`] keeps one connection manager per pool key for the adapters (their
//!   shared facade is in `adapter.rs`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::connection::ConnectionConfig;
use crate::error::BackendError;
use crate::key::PoolKey;
use crate::secret::Secret;

/// Every error in the source chain of `e`, `e` first, looking inside `io::Error`s too (their
/// `source()` skips the wrapped error).
#[cfg(any(feature = "mysql", feature = "postgres", feature = "redis"))]
pub(crate) fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        out.push(err);
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    out
}

/// `text` with the password (when given and non-empty) and the password part of every
/// `scheme://user:password@host` URL replaced by `***`.
pub(crate) fn redact(text: &str, password: Option<&Secret>) -> String {
    let mut out = redact_urls(text);
    if let Some(pw) = password.map(Secret::expose).filter(|p| !p.is_empty()) {
        out = out.replace(pw, "***");
    }
    out
}

/// Replace the password of every URL's userinfo (`://user:secret@` → `://user:***@`).
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Builds a manager for one pool's connection config.
pub(crate) type Factory<M> = dyn Fn(&ConnectionConfig) -> Result<M, BackendError> + Send + Sync;

/// One manager per [`PoolKey`], built on first use by a factory, or one fixed manager for
/// every pool.
///
/// The password is not part of a pool key, so each entry remembers the password it was
/// built with (in memory only; [`Secret`] never prints) and is rebuilt when a config
/// with the same key brings another one (a rotated password).
#[cfg_attr(not(any(feature = "bb8", feature = "mobc")), allow(dead_code))]
pub(crate) enum ManagerCache<M> {
    Fixed(Arc<M>),
    PerKey {
        factory: Box<Factory<M>>,
        managers: Mutex<HashMap<PoolKey, Cached<M>>>,
    },
}

/// A cached manager and the password it was built with.
type Cached<M> = (Option<Secret>, Arc<M>);

#[cfg_attr(not(any(feature = "bb8", feature = "mobc")), allow(dead_code))]
impl<M> ManagerCache<M> {
    pub(crate) fn fixed(manager: M) -> Self {
        Self::Fixed(Arc::new(manager))
    }

    pub(crate) fn per_key(
        factory: impl Fn(&ConnectionConfig) -> Result<M, BackendError> + Send + Sync + 'static,
    ) -> Self {
        Self::PerKey {
            factory: Box::new(factory),
            managers: Mutex::new(HashMap::new()),
        }
    }

    /// The manager for `config`, built (outside the lock) if needed.
    pub(crate) fn get(&self, config: &ConnectionConfig) -> Result<Arc<M>, BackendError> {
        let (factory, managers) = match self {
            Self::Fixed(m) => return Ok(Arc::clone(m)),
            Self::PerKey { factory, managers } => (factory, managers),
        };
        let key = PoolKey::of(config);
        if let Some((pw, m)) = managers.lock().get(&key) {
            if *pw == config.password {
                return Ok(Arc::clone(m));
            }
        }
        // Two first connects may race and both build one; the last one stored wins and the
        // other serves only the connection it opened. Factories are cheap and pure.
        let built = Arc::new(factory(config)?);
        managers
            .lock()
            .insert(key, (config.password.clone(), Arc::clone(&built)));
        Ok(built)
    }

    /// Drop the cached manager of `key`. Its open connections keep it alive until closed.
    pub(crate) fn forget(&self, key: &PoolKey) -> bool {
        match self {
            Self::Fixed(_) => false,
            Self::PerKey { managers, .. } => managers.lock().remove(key).is_some(),
        }
    }

    /// How many managers are cached (1 for a fixed manager).
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Fixed(_) => 1,
            Self::PerKey { managers, .. } => managers.lock().len(),
        }
    }
}

impl<M> fmt::Debug for ManagerCache<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(_) => f.write_str("Fixed"),
            Self::PerKey { managers, .. } => {
                let keys: Vec<PoolKey> = managers.lock().keys().copied().collect();
                f.debug_struct("PerKey").field("keys", &keys).finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact("cannot open redis://app:hunter2@db:6379/0 now", None),
            "cannot open redis://app:***@db:6379/0 now"
        );
        assert_eq!(
            redact("x rediss://:pw@h y mysql://u@h/db", None),
            "x rediss://:***@h y mysql://u@h/db"
        );
        assert_eq!(redact("no url here", None), "no url here");
        assert_eq!(redact("trailing ://", None), "trailing ://");
    }

    #[test]
    fn the_password_itself_is_replaced() {
        let pw = Secret::new("s3cret");
        assert_eq!(
            redact("auth with s3cret failed", Some(&pw)),
            "auth with *** failed"
        );
        assert_eq!(redact("empty", Some(&Secret::new(""))), "empty");
    }
}
