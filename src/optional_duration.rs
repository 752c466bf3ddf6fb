//! Serde for the configs' optional durations (`idle_timeout`, `max_lifetime`,
//! `probe_interval`, …): a duration as `humantime` writes it (`"10m"`, `"1h 30m"`), or
//! `"off"` for none, since a TOML file or an environment variable has no null to say it
//! with. JSON's `null` is read as none too. None is written as `"off"`, so a config written
//! to TOML reads back the same.

use std::fmt;
use std::time::Duration;

use humantime_serde::re::humantime;
use serde::{de, Deserializer, Serializer};

/// The word for no duration (any case, surrounding spaces ignored when read).
pub(crate) const OFF: &str = "off";

pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(&humantime::format_duration(*d)),
        None => s.serialize_str(OFF),
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(OptionalDuration)
}

struct OptionalDuration;

impl<'de> de::Visitor<'de> for OptionalDuration {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration such as \"30s\", or \"{OFF}\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.trim().eq_ignore_ascii_case(OFF) {
            return Ok(None);
        }
        humantime::parse_duration(v).map(Some).map_err(E::custom)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(with = "super")]
        d: Option<Duration>,
    }

    #[test]
    fn off_and_null_are_none_and_none_is_written_off() {
        for text in ["d = \"off\"", "d = \"OFF\"", "d = \" off \""] {
            assert_eq!(toml::from_str::<T>(text).unwrap(), T { d: None }, "{text}");
        }
        assert_eq!(
            serde_json::from_str::<T>(r#"{"d":null}"#).unwrap(),
            T { d: None }
        );
        assert_eq!(
            toml::from_str::<T>("d = \"1m 30s\"").unwrap(),
            T {
                d: Some(Duration::from_secs(90))
            }
        );
        for d in [None, Some(Duration::from_millis(1500))] {
            let text = toml::to_string(&T { d }).unwrap();
            assert_eq!(toml::from_str::<T>(&text).unwrap(), T { d }, "{text}");
            let json = serde_json::to_string(&T { d }).unwrap();
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), T { d }, "{json}");
        }
        for bad in ["d = \"offf\"", "d = \"never\"", "d = 5", "d = true"] {
            assert!(toml::from_str::<T>(bad).is_err(), "{bad}");
        }
    }
}
