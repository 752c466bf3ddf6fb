//! Bounds every config shares, and the small validators that enforce them.
//!
//! - Every duration setting is at most [`MAX_DURATION`] (365 days), so `Instant + d`, `2 * d`
//!   and the breaker's doubling can never overflow. Code that adds a duration to an instant
//!   should still use [`deadline`], which saturates.
//! - Sizes that size semaphores or queues have a documented cap ([`MAX_POOL_SIZE`],
//!   [`MAX_OVERFLOW`], [`MAX_WAITERS`], [`MAX_CONNECTING`], [`MAX_POOLS`], [`MAX_REPLICAS`], [`MAX_BUDGET`]).
//! - Text settings refuse NUL and every other control character ([`check_text`]).
//!
//! The public configs re-export these as associated constants (`PoolConfig::MAX_SIZE`…).
//!
//! Deserialization runs the same `validate()` as code does: [`validated_config!`] declares a
//! config struct whose `Deserialize` goes through a private twin with the same fields and then
//! validates, so a bad TOML value is an error naming the field at parse time.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tokio::time::Instant;

use crate::error::ConfigError;

/// The longest any duration setting may be: 365 days.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Most connections one pool keeps (`max_size`).
pub(crate) const MAX_POOL_SIZE: u32 = 10_000;

/// Most overflow connections one pool may open beyond `max_size` (`max_overflow`).
pub(crate) const MAX_OVERFLOW: u32 = 10_000;

/// Most acquires one pool lets wait at once (`max_waiters`).
pub(crate) const MAX_WAITERS: usize = 1_000_000;

/// Most connects one pool runs at once (`max_connecting`).
pub(crate) const MAX_CONNECTING: u32 = 10_000;

/// Most pools one supervisor keeps alive (`max_pools`).
pub(crate) const MAX_POOLS: usize = 100_000;

/// Most connections a supervisor's budget allows (`max_connections_per_host`,
/// `max_total_connections`).
pub(crate) const MAX_BUDGET: u32 = 1_000_000;

/// Most replicas one replica set has (`replicas`).
pub(crate) const MAX_REPLICAS: usize = 1_000;

/// How far [`deadline`] reaches when `start + d` would not fit: about 30 years.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `start + d`, saturating: a `d` longer than about 30 years (or one that does not fit in an
/// `Instant` at all) gives an instant about 30 years out instead of panicking with
/// "overflow when adding duration to instant". Never earlier than `start`.
#[inline]
pub(crate) fn deadline(start: Instant, d: Duration) -> Instant {
    if d <= FAR_FUTURE {
        if let Some(t) = start.checked_add(d) {
            return t;
        }
    }
    deadline_far(start, d)
}

#[cold]
fn deadline_far(start: Instant, d: Duration) -> Instant {
    let mut d = d.min(FAR_FUTURE);
    loop {
        if let Some(t) = start.checked_add(d) {
            return t;
        }
        // Only near the end of the platform's clock range: take what still fits.
        d /= 2;
        if d.is_zero() {
            return start;
        }
    }
}

/// `d` must be at most [`MAX_DURATION`].
pub(crate) fn check_duration(field: &str, d: Duration) -> Result<(), ConfigError> {
    if d > MAX_DURATION {
        return Err(ConfigError::new(
            field,
            format!(
                "must be at most 365 days ({}s), got {}s",
                MAX_DURATION.as_secs(),
                d.as_secs()
            ),
        ));
    }
    Ok(())
}

/// `d` must be greater than zero and at most [`MAX_DURATION`].
pub(crate) fn check_positive_duration(field: &str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::new(field, "must be greater than zero"));
    }
    check_duration(field, d)
}

/// The shortest interval of a periodic task (maintenance ticks, probes, reaps, topology
/// rounds): the resolution their schedules run at. Shorter would not run more often; a
/// probe every nanosecond would be due again at the instant it ran.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// An interval: at least [`MIN_INTERVAL`] and at most [`MAX_DURATION`].
pub(crate) fn check_interval(field: &str, d: Duration) -> Result<(), ConfigError> {
    if d < MIN_INTERVAL {
        return Err(ConfigError::new(
            field,
            format!("must be at least 1ms, got {d:?}"),
        ));
    }
    check_duration(field, d)
}

/// `Some(d)` must be greater than zero and at most [`MAX_DURATION`]; `None` passes.
pub(crate) fn check_optional_duration(field: &str, d: Option<Duration>) -> Result<(), ConfigError> {
    d.map_or(Ok(()), |d| check_positive_duration(field, d))
}

/// `value` must lie in `min..=max`.
pub(crate) fn check_size<T>(field: &str, value: T, min: T, max: T) -> Result<(), ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if value < min || value > max {
        return Err(ConfigError::new(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

/// `s` must hold no NUL or other control character (Unicode category Cc: U+0000–U+001F,
/// U+007F–U+009F). The error gives the character's code point and byte offset, never the text.
pub(crate) fn check_text(field: &str, s: &str) -> Result<(), ConfigError> {
    match s.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, c)) => Err(ConfigError::new(
            field,
            format!(
                "contains the control character U+{:04X} at byte {at}",
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

/// `s` must be non-empty and pass [`check_text`].
pub(crate) fn check_name(field: &str, s: &str) -> Result<(), ConfigError> {
    if s.is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    check_text(field, s)
}

/// A config error found in a nested config, re-rooted: `pool.max_size` under `from = "pool."`,
/// `to = "supervisor.default_pool."` becomes `supervisor.default_pool.max_size`.
pub(crate) fn nest(e: ConfigError, from: &str, to: &str) -> ConfigError {
    let field = match e.field.strip_prefix(from) {
        Some(rest) => format!("{to}{rest}"),
        None => format!("{to}{}", e.field),
    };
    ConfigError { field, ..e }
}

/// A config that can be deserialized without validation, for nesting in another config whose
/// own `validate()` covers it (and names its fields with the full path).
pub(crate) trait Unvalidated: Sized {
    fn deserialize_unvalidated<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// Deserializes through [`Unvalidated`].
struct Nested<T>(T);

impl<'de, T: Unvalidated> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize_unvalidated(d).map(Nested)
    }
}

/// `deserialize_with` for a nested config field: validated by the enclosing config.
pub(crate) fn nested<'de, D: Deserializer<'de>, T: Unvalidated>(d: D) -> Result<T, D::Error> {
    T::deserialize_unvalidated(d)
}

/// `deserialize_with` for an optional nested config field.
pub(crate) fn nested_option<'de, D: Deserializer<'de>, T: Unvalidated>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<Nested<T>>::deserialize(d).map(|o| o.map(|n| n.0))
}

/// `deserialize_with` for a list of nested configs.
pub(crate) fn nested_vec<'de, D: Deserializer<'de>, T: Unvalidated>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Vec::<Nested<T>>::deserialize(d).map(|v| v.into_iter().map(|n| n.0).collect())
}

/// Declares a config struct whose `Deserialize` validates.
///
/// ```text
/// validated_config! {
///     /// docs
///     #[derive(Debug, Clone, Serialize)]          // public struct: no Deserialize derive
///     pub struct PoolConfig {
///         /// field docs
///         #[serde(with = "humantime_serde")]        // shared by both structs
///         pub acquire_timeout: Duration,
///     }
///     fields: PoolConfigFields, #[serde(default, deny_unknown_fields)], default;
/// }
/// ```
///
/// serde derives `Deserialize` for the private twin `PoolConfigFields` (same fields and field
/// attributes, plus the container attributes given after `fields:`); the public struct's
/// `Deserialize` reads the twin, moves it over and calls `validate()`, turning a
/// [`ConfigError`] into the deserializer's error. With `default`, the twin's `Default` is the
/// public struct's. [`Unvalidated`] is implemented for nesting.
macro_rules! validated_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
        fields: $raw:ident, $(#[$rmeta:meta])* $(, $default:ident)?;
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field : $ty, )*
        }

        #[derive(serde::Deserialize)]
        $(#[$rmeta])*
        struct $raw {
            $( $(#[$fmeta])* $field : $ty, )*
        }

        impl From<$raw> for $name {
            fn from(raw: $raw) -> Self {
                Self { $( $field: raw.$field, )* }
            }
        }

        impl From<$name> for $raw {
            fn from(c: $name) -> Self {
                Self { $( $field: c.$field, )* }
            }
        }

        $( $crate::limits::validated_config!(@$default $name $raw); )?

        impl $crate::limits::Unvalidated for $name {
            fn deserialize_unvalidated<'de, D: serde::Deserializer<'de>>(
                d: D,
            ) -> Result<Self, D::Error> {
                <$raw as serde::Deserialize>::deserialize(d).map(Self::from)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            /// Deserializes and then runs `validate()`: a config that would not validate is
            /// a deserialization error naming the field.
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let this = <Self as $crate::limits::Unvalidated>::deserialize_unvalidated(d)?;
                this.validate().map_err(<D::Error as serde::de::Error>::custom)?;
                Ok(this)
            }
        }
    };
    (@default $name:ident $raw:ident) => {
        impl Default for $raw {
            fn default() -> Self {
                let d = <$name as Default>::default();
                Self::from(d)
            }
        }
    };
}

pub(crate) use validated_config;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_saturates() {
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = deadline(now, Duration::MAX);
        assert!(far >= now + Duration::from_secs(29 * 365 * 24 * 3600));
        assert_eq!(deadline(now, Duration::ZERO), now);
    }

    #[test]
    fn durations_are_bounded() {
        check_duration("x", MAX_DURATION).unwrap();
        assert_eq!(
            check_duration("x", MAX_DURATION + Duration::from_nanos(1))
                .unwrap_err()
                .field,
            "x"
        );
        assert!(check_positive_duration("x", Duration::ZERO).is_err());
        assert!(check_optional_duration("x", Some(Duration::MAX)).is_err());
        check_optional_duration("x", None).unwrap();
    }

    #[test]
    fn text_refuses_controls_without_echoing() {
        check_text("f", "plain text é").unwrap();
        for bad in ["a\0b", "\n", "x\u{7f}", "\u{85}", "tab\there"] {
            let e = check_text("f", bad).unwrap_err();
            assert_eq!(e.field, "f");
            assert!(!e.reason.contains(bad), "{e}");
        }
        assert!(check_name("f", "").is_err());
    }
}
