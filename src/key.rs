//! Pool keys: a stable SHA-256 over everything that changes what a connection is. The
//! encoding of a config's identity lives with the config (`connection/identity.rs`).

use std::fmt;

/// Identifies a pool: SHA-256 over the backend kind, hosts, ports, database, user, TLS
/// settings, application name and options of a [`ConnectionConfig`](crate::ConnectionConfig), never
/// the password.
///
/// The encoding is versioned and fixed, so a key is the same across processes and crate
/// versions (a test pins it).
///
/// ```
/// use poolwarden::{ConnectionConfig, PoolKey};
/// let a = ConnectionConfig::parse("postgres://app:one@db/orders")?;
/// let b = ConnectionConfig::parse("postgres://app:two@db/orders")?;
/// assert_eq!(PoolKey::of(&a), PoolKey::of(&b)); // the password is not part of the key
/// let c = ConnectionConfig::parse("postgres://app:one@db/users")?;
/// assert_ne!(PoolKey::of(&a), PoolKey::of(&c));
/// # Ok::<(), poolwarden::ConfigError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey([u8; 32]);

impl PoolKey {
    pub(crate) fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Full lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The first 12 hex digits: enough to tell pools apart in logs.
impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolKey({self})")
    }
}

impl serde::Serialize for PoolKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
