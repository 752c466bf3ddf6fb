//! Per-connection overrides of a server's behaviour, from the config options
//! `connect_latency`, `query_latency`, `connect_failure_rate` and `query_failure_rate`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{BackendError, BackendErrorKind};

#[derive(Default)]
pub(super) struct Overrides {
    pub(super) connect_latency: Option<Duration>,
    pub(super) query_latency: Option<Duration>,
    pub(super) connect_failure_rate: Option<f64>,
    pub(super) query_failure_rate: Option<f64>,
}

fn option_error(key: &str, reason: String) -> BackendError {
    BackendError::new(
        BackendErrorKind::Config,
        format!("invalid sim option `{key}`: {reason}"),
    )
}

fn parse_latency(key: &str, value: &str) -> Result<Duration, BackendError> {
    humantime_serde::re::humantime::parse_duration(value.trim())
        .map_err(|e| option_error(key, format!("`{value}` is not a duration ({e})")))
}

fn parse_rate(key: &str, value: &str) -> Result<f64, BackendError> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(option_error(
            key,
            format!("`{value}` is not a number between 0 and 1"),
        )),
    }
}

impl Overrides {
    pub(super) fn parse(options: &BTreeMap<String, String>) -> Result<Self, BackendError> {
        let mut o = Self::default();
        for (key, value) in options {
            match key.as_str() {
                "connect_latency" => o.connect_latency = Some(parse_latency(key, value)?),
                "query_latency" => o.query_latency = Some(parse_latency(key, value)?),
                "connect_failure_rate" => o.connect_failure_rate = Some(parse_rate(key, value)?),
                "query_failure_rate" => o.query_failure_rate = Some(parse_rate(key, value)?),
                _ => {}
            }
        }
        Ok(o)
    }
}
