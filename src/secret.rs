//! A string that never prints itself.

use std::fmt;

use serde::{Deserialize, Deserializer};

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

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** \"***\"");
        assert_eq!(s.expose(), "hunter2");
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
