//! A string that never prints itself, and the keyed hash secrets are compared by.

use std::fmt;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Deserializer};
use sha2::Sha256;

use crate::error::ConfigError;

/// A password or other secret. `Debug` and `Display` print `***`; it is never serialized.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for handing to a driver. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its keyed hash (HMAC-SHA256 under a key drawn at random once per process), to
    /// compare secrets without keeping a second copy: two fingerprints are equal exactly
    /// when the secrets are (short of a collision). A fingerprint never prints itself.
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        Fingerprint(hmac_sha256(process_key(), self.0.as_bytes()))
    }

    /// Refuse NUL and other control characters. The error names `field` and says nothing
    /// about the value (not even where the bad character is).
    pub(crate) fn check(&self, field: &str) -> Result<(), ConfigError> {
        if self.0.chars().any(char::is_control) {
            return Err(ConfigError::new(
                field,
                "contains a NUL or other control character",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The keyed hash of a [`Secret`] ([`Secret::fingerprint`]). Compared in constant time;
/// `Debug` shows nothing of it, and it has no `Display`.
#[derive(Clone, Copy)]
pub(crate) struct Fingerprint([u8; 32]);

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        // Constant time: every byte is looked at, whatever the first difference.
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for Fingerprint {}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprint(..)")
    }
}

/// The per-process key of [`Secret::fingerprint`]: 32 bytes from the thread-local CSPRNG
/// (seeded by the operating system), drawn on first use and never shown.
fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        key
    })
}

/// HMAC (RFC 2104) over SHA-256.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** \"***\"");
        assert_eq!(s.expose(), "hunter2");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1, 2 and 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn fingerprints_compare_secrets_and_never_print() {
        let a = Secret::new("hunter2");
        assert_eq!(a.fingerprint(), Secret::new("hunter2").fingerprint());
        assert_ne!(a.fingerprint(), Secret::new("hunter3").fingerprint());
        assert_ne!(a.fingerprint(), Secret::new("").fingerprint());
        // Keyed: not the plain SHA-256 of the secret, nor an HMAC under an empty key.
        let f = a.fingerprint();
        assert_ne!(f.0, <[u8; 32]>::from(Sha256::digest(b"hunter2")));
        assert_ne!(f.0, hmac_sha256(b"", b"hunter2"));
        let shown = format!("{f:?} {f:#?}");
        assert_eq!(shown, "Fingerprint(..) Fingerprint(..)");
        assert!(!shown.contains(&hex(&f.0)[..8]));
    }

    #[test]
    fn check_refuses_controls_without_saying_where() {
        Secret::new("p\u{e9}ss word")
            .check("connection.password")
            .unwrap();
        let e = Secret::new("hun\0ter2")
            .check("connection.password")
            .unwrap_err();
        assert_eq!(e.field, "connection.password");
        assert!(!e.to_string().contains("hun"), "{e}");
    }
}
