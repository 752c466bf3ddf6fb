//! Hostile configuration input: never a panic, never a silent misparse, never the password
//! in print. Covers the URL parser, the serde (TOML) path and configs built in code, which
//! all go through one `validate()`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use poolwarden::{
    ConfigError, ConnectionConfig, Host, PoolConfig, PoolKey, ReplicaSetConfig, Secret, SslMode,
    SupervisorConfig, TlsConfig,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Percent-encode every byte but ASCII alphanumerics (or every byte at all), in upper or
/// lower case hex.
fn encode(s: &str, all: bool, lower: bool) -> String {
    s.bytes()
        .map(|b| {
            if !all && b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Lossy percent-decoding, to find a secret in any encoding of it.
fn decode_lossy(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` shows `secret` in no encoding: raw, percent-encoded (partly or fully, either hex
/// case) or form-encoded.
#[track_caller]
fn assert_hidden(what: &str, text: &str, secret: &str) {
    if secret.is_empty() {
        return;
    }
    let lower = text.to_lowercase();
    let mut shown = vec![secret.to_string()];
    for all in [false, true] {
        for lower_hex in [false, true] {
            shown.push(encode(secret, all, lower_hex));
        }
    }
    for s in &shown {
        assert!(
            !text.contains(s.as_str()),
            "{what} shows the password as {s:?}: {text}"
        );
    }
    // Any mix of hex case in the fully encoded form.
    assert!(
        !lower.contains(&encode(secret, true, true)),
        "{what} shows the password, encoded: {text}"
    );
    assert!(
        !decode_lossy(text).contains(secret),
        "{what} shows the password once decoded: {text}"
    );
    assert!(
        !decode_lossy(&text.replace('+', " ")).contains(secret),
        "{what} shows the password form-encoded: {text}"
    );
}

fn config_texts(c: &ConnectionConfig) -> String {
    format!("{c} | {c:?} | {c:#?}")
}

fn error_texts(e: &ConfigError) -> String {
    let as_error = poolwarden::Error::from(e.clone());
    format!("{e} | {e:?} | {as_error} | {as_error:?}")
}

fn err_field(r: Result<impl std::fmt::Debug, ConfigError>) -> String {
    r.expect_err("expected a config error").field
}

const MAX_TOML: &str = "\"18446744073709551615s\"";

// ---------------------------------------------------------------------------------------
// Durations: Duration::MAX (and anything above the documented maximum) is an error naming
// the field, never a panic; in code and from TOML.
// ---------------------------------------------------------------------------------------

type PoolCase = (&'static str, fn(&mut PoolConfig, Duration));

fn pool_duration_fields() -> Vec<PoolCase> {
    vec![
        ("acquire_timeout", |c, d| c.acquire_timeout = d),
        ("connect_timeout", |c, d| c.connect_timeout = d),
        ("probe_timeout", |c, d| c.probe_timeout = d),
        ("idle_timeout", |c, d| c.idle_timeout = Some(d)),
        ("max_lifetime", |c, d| c.max_lifetime = Some(d)),
        ("lifetime_jitter", |c, d| c.lifetime_jitter = d),
        ("checkout_bypass", |c, d| c.checkout_bypass = d),
        ("backoff_initial", |c, d| c.backoff_initial = d),
        ("backoff_max", |c, d| c.backoff_max = d),
        ("maintenance_interval", |c, d| c.maintenance_interval = d),
        ("probe_interval", |c, d| c.probe_interval = Some(d)),
        ("leak_threshold", |c, d| c.leak_threshold = Some(d)),
        ("leak_reclaim_after", |c, d| {
            c.leak_threshold = Some(Duration::from_secs(1));
            c.leak_reclaim_after = Some(d)
        }),
        ("breaker.open_for", |c, d| c.breaker.open_for = d),
        ("breaker.max_open_for", |c, d| c.breaker.max_open_for = d),
    ]
}

/// The TOML that sets a pool field to `value` (`breaker.x` goes in a `[breaker]` table).
fn pool_toml(field: &str, value: &str) -> String {
    let extra = if field == "leak_reclaim_after" {
        "leak_threshold = \"1s\"\n"
    } else {
        ""
    };
    match field.strip_prefix("breaker.") {
        Some(f) => format!("[breaker]\n{f} = {value}\n"),
        None => format!("{extra}{field} = {value}\n"),
    }
}

#[test]
fn every_pool_duration_at_max_is_an_error_naming_it() {
    for (field, set) in pool_duration_fields() {
        for d in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            PoolConfig::MAX_DURATION + Duration::from_nanos(1),
        ] {
            let mut c = PoolConfig::default();
            set(&mut c, d);
            assert_eq!(err_field(c.validate()), format!("pool.{field}"), "{d:?}");
        }
        // At the maximum itself: fine, or a relation to another field, never a bound error.
        let mut c = PoolConfig::default();
        set(&mut c, PoolConfig::MAX_DURATION);
        if let Err(e) = c.validate() {
            assert!(!e.reason.contains("at most 365 days"), "{field}: {e}");
        }
    }
}

#[test]
fn every_pool_duration_at_max_from_toml_is_an_error_naming_it() {
    for (field, _) in pool_duration_fields() {
        for value in [MAX_TOML, "\"400days\""] {
            let text = pool_toml(field, value);
            let e = toml::from_str::<PoolConfig>(&text).expect_err(&text);
            let shown = e.to_string();
            assert!(shown.contains(field), "{text}: {shown}");
            if value != MAX_TOML {
                assert!(shown.contains(&format!("pool.{field}")), "{text}: {shown}");
            }
            // Nested in a supervisor config, with the full path.
            let nested = format!(
                "[default_pool]\n{}",
                pool_toml(field, value).replace("[breaker]", "[default_pool.breaker]")
            );
            let e = toml::from_str::<SupervisorConfig>(&nested).expect_err(&nested);
            assert!(e.to_string().contains(field), "{nested}: {e}");
        }
    }
}

/// Every optional duration can be turned off where there is no null to say it with: `"off"`
/// in TOML (and in an environment variable, tests/settings.rs), in any case; a config with
/// them off writes TOML that reads back the same; a word that is neither a duration nor
/// `"off"` is an error naming the field.
#[test]
fn optional_durations_are_turned_off_from_toml_and_round_trip() {
    let text = "idle_timeout = \"off\"\nmax_lifetime = \"OFF\"\nprobe_interval = \"off\"\n\
                leak_threshold = \"off\"\nleak_reclaim_after = \"off\"\n";
    let c: PoolConfig = toml::from_str(text).unwrap();
    assert_eq!(
        (
            c.idle_timeout,
            c.max_lifetime,
            c.probe_interval,
            c.leak_threshold,
            c.leak_reclaim_after
        ),
        (None, None, None, None, None)
    );
    let back: PoolConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    // And with values: the defaults, and leak detection on.
    let on = PoolConfig {
        leak_threshold: Some(Duration::from_millis(1500)),
        leak_reclaim_after: Some(Duration::from_secs(90)),
        ..PoolConfig::default()
    };
    let back: PoolConfig = toml::from_str(&toml::to_string(&on).unwrap()).unwrap();
    assert_eq!(back, on);
    let json: PoolConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(json, c);

    let s: SupervisorConfig = toml::from_str("pool_idle_timeout = \"off\"").unwrap();
    assert_eq!(s.pool_idle_timeout, None);
    let r: ReplicaSetConfig = toml::from_str(
        "name = \"rs\"\nmax_lag = \"off\"\n\
         primary = { backend = \"sim\", hosts = [{ host = \"p\", port = 1 }] }",
    )
    .unwrap();
    assert_eq!(r.max_lag, None);

    for field in ["idle_timeout", "probe_interval", "leak_threshold"] {
        let text = format!("{field} = \"never\"");
        let e = toml::from_str::<PoolConfig>(&text).expect_err(&text);
        assert!(e.to_string().contains(field), "{text}: {e}");
    }
}

/// A misspelt option of a built-in backend that reads only the keys it knows (MySQL,
/// Redis, the simulated backend) is an error naming it, however the config was made: not a
/// setting that silently does nothing (while still making another pool key).
#[test]
fn unknown_options_of_a_backend_are_refused_by_name() {
    for (url, key) in [
        ("mysql://db/app?wait_timout=60", "wait_timout"),
        ("mariadb://db/app?reset=rollback&colour=blue", "colour"),
        ("redis://db/0?response_timout=2s", "response_timout"),
        ("rediss://db/0?tls=yes", "tls"),
        ("sim://db/x?connect_latncy=5ms", "connect_latncy"),
    ] {
        let e = ConnectionConfig::parse(url).expect_err(url);
        assert_eq!(e.field, format!("connection.options.{key}"), "{url}: {e}");
        assert!(e.reason.contains("known:"), "{url}: {e}");
    }
    for url in [
        "mysql://db/app?wait_timeout=60&reset=connection&prefer_socket=false",
        "redis://db/0?response_timeout=2s",
        "sim://db/x?connect_latency=5ms&query_failure_rate=0.5",
    ] {
        ConnectionConfig::parse(url).expect(url);
    }
    let text = "backend = \"redis\"\nhosts = [{ host = \"db\", port = 6379 }]\noptions = { response_timout = \"2s\" }";
    let e = toml::from_str::<ConnectionConfig>(text).expect_err(text);
    assert!(
        e.to_string().contains("connection.options.response_timout"),
        "{e}"
    );
    let mut code = ConnectionConfig::sim("db");
    code.options.insert("query_latncy".into(), "1ms".into());
    assert_eq!(
        code.validate().unwrap_err().field,
        "connection.options.query_latncy"
    );
}

/// An interval shorter than the schedules' resolution (1 ms) is refused by name, however
/// the config was made: a probe every nanosecond would be due again at the instant it ran.
#[test]
fn intervals_under_a_millisecond_are_refused_by_name() {
    for d in [Duration::from_nanos(1), Duration::from_micros(999)] {
        let errors = [
            PoolConfig {
                probe_interval: Some(d),
                ..PoolConfig::default()
            }
            .validate(),
            PoolConfig {
                maintenance_interval: d,
                ..PoolConfig::default()
            }
            .validate(),
            SupervisorConfig {
                reap_interval: d,
                ..SupervisorConfig::default()
            }
            .validate(),
            ReplicaSetConfig {
                topology_interval: d,
                ..ReplicaSetConfig::new("s", ConnectionConfig::sim("p"), vec![])
            }
            .validate(),
        ];
        let fields = [
            "pool.probe_interval",
            "pool.maintenance_interval",
            "supervisor.reap_interval",
            "replica_set.topology_interval",
        ];
        for (e, field) in errors.into_iter().zip(fields) {
            let e = e.expect_err(field);
            assert_eq!(e.field, field);
            assert!(e.reason.contains("at least 1ms"), "{e}");
        }
    }
    for text in [
        "probe_interval = \"1ns\"",
        "maintenance_interval = \"500us\"",
    ] {
        let e = toml::from_str::<PoolConfig>(text).expect_err(text);
        assert!(e.to_string().contains("at least 1ms"), "{text}: {e}");
    }
    let one_ms = Duration::from_millis(1);
    PoolConfig {
        probe_interval: Some(one_ms),
        maintenance_interval: one_ms,
        ..PoolConfig::default()
    }
    .validate()
    .expect("1ms is fine");
}

#[test]
fn humantime_max_seconds_names_the_pool_field() {
    let e = toml::from_str::<PoolConfig>(&format!("acquire_timeout = {MAX_TOML}")).unwrap_err();
    assert!(e.to_string().contains("acquire_timeout"), "{e}");
}

#[test]
fn supervisor_and_replica_set_durations_are_bounded() {
    type Case = (&'static str, fn(&mut SupervisorConfig, Duration));
    let cases: Vec<Case> = vec![
        ("pool_idle_timeout", |c, d| c.pool_idle_timeout = Some(d)),
        ("reap_interval", |c, d| c.reap_interval = d),
        ("health_timeout", |c, d| c.health_timeout = d),
        ("restart_window", |c, d| c.restart_window = d),
        ("default_pool.acquire_timeout", |c, d| {
            c.default_pool.acquire_timeout = d
        }),
        ("default_pool.breaker.open_for", |c, d| {
            c.default_pool.breaker.open_for = d
        }),
    ];
    for (field, set) in cases {
        let mut c = SupervisorConfig::default();
        set(&mut c, Duration::MAX);
        assert_eq!(err_field(c.validate()), format!("supervisor.{field}"));
    }
    for field in [
        "pool_idle_timeout",
        "reap_interval",
        "health_timeout",
        "restart_window",
    ] {
        for value in [MAX_TOML, "\"366days\""] {
            let text = format!("{field} = {value}");
            let e = toml::from_str::<SupervisorConfig>(&text).expect_err(&text);
            assert!(e.to_string().contains(field), "{e}");
        }
        let e = toml::from_str::<SupervisorConfig>(&format!("{field} = \"366days\"")).unwrap_err();
        assert!(
            e.to_string().contains(&format!("supervisor.{field}")),
            "{e}"
        );
    }
    // The supervisor waits twice the health timeout: at the maximum that still fits.
    let c = SupervisorConfig {
        health_timeout: SupervisorConfig::MAX_DURATION,
        ..SupervisorConfig::default()
    };
    c.validate().unwrap();
    assert!(c.health_timeout.checked_mul(2).is_some());

    let base = ReplicaSetConfig::new("rs", ConnectionConfig::sim("p"), vec![]);
    let mut c = base.clone();
    c.max_lag = Some(Duration::MAX);
    assert_eq!(err_field(c.validate()), "replica_set.max_lag");
    let mut c = base.clone();
    c.topology_interval = Duration::MAX;
    assert_eq!(err_field(c.validate()), "replica_set.topology_interval");
    let mut c = base.clone();
    c.slow_start_window = Duration::MAX;
    assert_eq!(err_field(c.validate()), "replica_set.slow_start_window");
    let mut c = base.clone();
    c.pool = Some(PoolConfig {
        max_lifetime: Some(Duration::MAX),
        ..PoolConfig::default()
    });
    assert_eq!(err_field(c.validate()), "replica_set.pool.max_lifetime");
    let primary = r#"primary = { backend = "sim", hosts = [{ host = "p", port = 1 }] }"#;
    for (line, field) in [
        (format!("max_lag = {MAX_TOML}"), "max_lag"),
        (
            format!("topology_interval = {MAX_TOML}"),
            "topology_interval",
        ),
        (
            format!("slow_start_window = {MAX_TOML}"),
            "replica_set.slow_start_window",
        ),
        (
            "pool = { connect_timeout = \"1000days\" }".to_string(),
            "replica_set.pool.connect_timeout",
        ),
    ] {
        let text = format!("name = \"rs\"\n{primary}\n{line}");
        let e = toml::from_str::<ReplicaSetConfig>(&text).expect_err(&text);
        assert!(e.to_string().contains(field), "{text}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// Sizes: huge values are errors naming the field (so nothing is ever sized by them).
// ---------------------------------------------------------------------------------------

#[test]
fn huge_sizes_are_errors_naming_the_field() {
    type Case = (&'static str, fn(&mut PoolConfig));
    let cases: Vec<Case> = vec![
        ("max_size", |c| c.max_size = u32::MAX),
        ("max_overflow", |c| c.max_overflow = u32::MAX),
        ("max_waiters", |c| c.max_waiters = usize::MAX),
        ("max_connecting", |c| c.max_connecting = u32::MAX),
        ("min_idle", |c| c.min_idle = u32::MAX),
        ("max_size", |c| c.max_size = PoolConfig::MAX_SIZE + 1),
    ];
    for (field, set) in cases {
        let mut c = PoolConfig::default();
        set(&mut c);
        assert_eq!(err_field(c.validate()), format!("pool.{field}"));
    }
    for (field, value) in [
        ("max_size", u32::MAX as i64),
        ("max_overflow", u32::MAX as i64),
        ("max_waiters", i64::MAX),
        ("max_connecting", u32::MAX as i64),
    ] {
        let text = format!("{field} = {value}");
        let e = toml::from_str::<PoolConfig>(&text).expect_err(&text);
        assert!(e.to_string().contains(&format!("pool.{field}")), "{e}");
    }
    let c = SupervisorConfig {
        max_pools: usize::MAX,
        ..SupervisorConfig::default()
    };
    assert_eq!(err_field(c.validate()), "supervisor.max_pools");
    let e = toml::from_str::<SupervisorConfig>(&format!("max_pools = {}", i64::MAX)).unwrap_err();
    assert!(e.to_string().contains("supervisor.max_pools"), "{e}");

    // The maximums themselves are valid.
    PoolConfig {
        max_size: PoolConfig::MAX_SIZE,
        max_overflow: PoolConfig::MAX_OVERFLOW,
        max_waiters: PoolConfig::MAX_WAITERS,
        max_connecting: PoolConfig::MAX_CONNECTING,
        ..PoolConfig::default()
    }
    .validate()
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// The examples from the issue, one by one.
// ---------------------------------------------------------------------------------------

#[test]
fn ipv6_without_brackets_is_refused() {
    // URL syntax that cannot be read: the URL is named, the entry said in the reason.
    for url in [
        "postgres://::1/db",
        "postgres://::1:5432/db",
        "postgres://fe80::1/db",
        "postgres://h,::1/db",
    ] {
        let e = ConnectionConfig::parse(url).expect_err(url);
        assert_eq!(e.field, "connection.url", "{url}: {e}");
        assert!(e.reason.contains("IPv6"), "{url}: {e}");
    }
    let c = ConnectionConfig::parse("postgres://[::1]/db").unwrap();
    assert_eq!(
        c.hosts,
        vec![Host {
            host: "::1".into(),
            port: 5432
        }]
    );
    let c = ConnectionConfig::parse("postgres://[::1]:6000,h:7/db").unwrap();
    assert_eq!((c.hosts[0].port, c.hosts[1].port), (6000, 7));
    for bad in [
        "postgres://[::1/db",
        "postgres://[nothex]/db",
        "postgres://[1.2.3.4]/db",
        "postgres://[::1]x/db",
    ] {
        assert_eq!(
            err_field(ConnectionConfig::parse(bad)),
            "connection.url",
            "{bad}"
        );
    }
}

#[test]
fn port_zero_is_refused_in_every_syntax() {
    for (url, field) in [
        ("postgres://h:0/db", "connection.hosts[0].port"),
        ("postgres://h:00000/db", "connection.hosts[0].port"),
        ("postgres://[::1]:0/db", "connection.hosts[0].port"),
        ("postgres://a:1,b:0/db", "connection.hosts[1].port"),
        ("postgres://a:1,[::1]:0/db", "connection.hosts[1].port"),
        ("postgres://u:p@h:0/db", "connection.hosts[0].port"),
        ("postgres://h:65536/db", "connection.hosts[0].port"),
        (
            "postgres://h:99999999999999999999999/db",
            "connection.hosts[0].port",
        ),
        ("postgres://h:+5432/db", "connection.url"),
        ("postgres://h:-1/db", "connection.url"),
        ("postgres://h:/db", "connection.url"),
        ("postgres://[::1]:/db", "connection.url"),
    ] {
        assert_eq!(err_field(ConnectionConfig::parse(url)), field, "{url}");
    }
    // Built in code.
    assert_eq!(
        err_field(ConnectionConfig::new("postgres", "::1", 0).validate()),
        "connection.hosts[0].port"
    );
    let mut c = ConnectionConfig::new("postgres", "a", 1);
    c.hosts.push(Host {
        host: "b".into(),
        port: 0,
    });
    assert_eq!(err_field(c.validate()), "connection.hosts[1].port");
    // From TOML, directly and in a replica set.
    for hosts in [
        r#"[{ host = "db", port = 0 }]"#,
        r#"[{ host = "::1", port = 0 }]"#,
        r#"[{ host = "a", port = 1 }, { host = "b", port = 0 }]"#,
    ] {
        let text = format!("backend = \"postgres\"\nhosts = {hosts}");
        let e = toml::from_str::<ConnectionConfig>(&text).expect_err(&text);
        assert!(e.to_string().contains("].port"), "{e}");
        let text = format!("name = \"rs\"\nprimary = {{ backend = \"sim\", hosts = {hosts} }}");
        let e = toml::from_str::<ReplicaSetConfig>(&text).expect_err(&text);
        assert!(e.to_string().contains("replica_set.primary.hosts["), "{e}");
    }
}

#[test]
fn empty_hosts_are_refused() {
    for (url, entry) in [
        ("postgres://a,,b/db", "entry 2"),
        ("postgres://,h/db", "entry 1"),
        ("postgres://h,/db", "entry 2"),
        ("postgres:///db", "entry 1"),
        ("postgres://u:p@/db", "entry 1"),
        ("postgres://:5432/db", "entry 1"),
    ] {
        let e = ConnectionConfig::parse(url).expect_err(url);
        assert_eq!(e.field, "connection.url", "{url}");
        assert!(e.reason.contains(entry), "{url}: {e}");
    }
    let text = "backend = \"postgres\"\nhosts = [{ host = \"\", port = 1 }]";
    let e = toml::from_str::<ConnectionConfig>(text).unwrap_err();
    assert!(e.to_string().contains("connection.hosts[0].host"), "{e}");
    let text = "backend = \"postgres\"\nhosts = []";
    let e = toml::from_str::<ConnectionConfig>(text).unwrap_err();
    assert!(e.to_string().contains("connection.hosts"), "{e}");
}

#[test]
fn nul_and_control_characters_are_refused_with_the_field_named() {
    let cases = [
        ("postgres://h%00x/db", "connection.hosts[0].host"),
        ("postgres://h/d%00b", "connection.database"),
        ("postgres://u%00s@h/db", "connection.user"),
        ("postgres://u:p%00w@h/db", "connection.password"),
        (
            "postgres://h/db?application_name=a%00",
            "connection.application_name",
        ),
        (
            "postgres://h/db?application_name=a%0Ab",
            "connection.application_name",
        ),
        ("postgres://h/db?dbname=x%1B", "connection.database"),
        ("postgres://h/db?password=x%7F", "connection.password"),
        (
            "postgres://h/db?sslrootcert=%2Fca%00.pem",
            "connection.tls.ca_file",
        ),
        (
            "postgres://h/db?statement_timeout=5%00s",
            "connection.options.statement_timeout",
        ),
        ("postgres://h/db?st%00=5", "connection.options"),
        (
            "postgres://h/db?application_name=%C2%85",
            "connection.application_name",
        ),
    ];
    for (url, field) in cases {
        let e = ConnectionConfig::parse(url).expect_err(url);
        assert_eq!(e.field, field, "{url}: {e}");
    }
    // Raw control characters anywhere: the URL as a whole.
    for url in [
        "postgres://h\0/db",
        "postgres://h/d\0b",
        "postgres://u:p\0w@h/db",
        "postgres://h/db\n",
        "\tpostgres://h/db",
    ] {
        assert_eq!(
            err_field(ConnectionConfig::parse(url)),
            "connection.url",
            "{url:?}"
        );
    }
    // Built in code.
    type Case = (&'static str, fn(&mut ConnectionConfig));
    let cases: Vec<Case> = vec![
        ("connection.hosts[0].host", |c| {
            c.hosts[0].host = "h\0".into()
        }),
        ("connection.database", |c| c.database = Some("d\0".into())),
        ("connection.user", |c| c.user = Some("\0".into())),
        ("connection.password", |c| {
            c.password = Some(Secret::new("p\0"))
        }),
        ("connection.application_name", |c| {
            c.application_name = Some("a\u{1}".into())
        }),
        ("connection.tls.ca_file", |c| {
            c.tls.ca_file = Some("/a\0".into())
        }),
        ("connection.options", |c| {
            c.options.insert("k\0".into(), "v".into());
        }),
        ("connection.options.k", |c| {
            c.options.insert("k".into(), "v\0".into());
        }),
    ];
    for (field, set) in cases {
        let mut c = ConnectionConfig::new("postgres", "h", 1);
        set(&mut c);
        assert_eq!(err_field(c.validate()), field);
    }
    // From TOML.
    for (line, field) in [
        (r#"database = "d\u0000""#, "connection.database"),
        (r#"user = "u\u0000""#, "connection.user"),
        (r#"password = "p\u0000w""#, "connection.password"),
        (
            r#"application_name = "a\u0000""#,
            "connection.application_name",
        ),
        (r#"options = { k = "v\u0000" }"#, "connection.options.k"),
    ] {
        let text =
            format!("backend = \"postgres\"\nhosts = [{{ host = \"h\", port = 1 }}]\n{line}");
        let e = toml::from_str::<ConnectionConfig>(&text).expect_err(&text);
        assert!(e.to_string().contains(field), "{text}: {e}");
    }
    let text = "backend = \"postgres\"\nhosts = [{ host = \"h\\u0000\", port = 1 }]";
    let e = toml::from_str::<ConnectionConfig>(text).unwrap_err();
    assert!(e.to_string().contains("connection.hosts[0].host"), "{e}");
}

#[test]
fn an_unescaped_delimiter_in_the_password_is_refused_and_never_shown() {
    const PW: &str = "Zebra7Quasar3";
    for (pw, rest) in [
        ("Zeb/ra7Quasar3", "h:5432/db"),
        ("Zebra7/Quasar3", "h/db"),
        ("12345/Zebra7Quasar3", "h:5432/db"),
        ("Zebra7?Quasar3", "h/db"),
        ("Zebra7#Quasar3", "h/db"),
        ("Zebra7@Quasar3", "h/db"),
        ("Zebra7Quasar3/x", "h,h2:5/db"),
        ("Zebra7%Quasar3", "h/db"),
    ] {
        let url = format!("postgres://app:{pw}@{rest}");
        let e = ConnectionConfig::parse(&url).expect_err(&url);
        assert!(e.field.starts_with("connection."), "{url}: {e}");
        assert_hidden(&url, &error_texts(&e), pw);
        assert_hidden(&url, &error_texts(&e), PW);
    }
    // Percent-encoded, the same passwords parse and stay hidden.
    for pw in [
        "Zeb/ra7Quasar3",
        "Zebra7?Q@#uasar3",
        "Zebra 7+Quasar3%",
        "Zébra7:Quasar3",
    ] {
        let url = format!("postgres://app:{}@h:5432/db", encode(pw, false, false));
        let c = ConnectionConfig::parse(&url).expect(&url);
        assert_eq!(c.password.as_ref().unwrap().expose(), pw);
        assert_eq!(c.hosts.len(), 1);
        assert_eq!(c.database.as_deref(), Some("db"));
        assert_hidden("config", &config_texts(&c), pw);
        assert_eq!(
            ConnectionConfig::parse(&c.to_url_with_password()).unwrap(),
            c
        );
    }
}

#[test]
fn other_ambiguities_are_refused() {
    for (url, field) in [
        ("postgres://u@x@h/db", "connection.url"),
        ("postgres://h/db#frag", "connection.url"),
        ("postgres://h/a/b", "connection.database"),
        ("postgres://h/db?application_name=a+b", "connection.url"),
        ("postgres://h/db?sslmode", "connection.url"),
        ("postgres://h/db?a=1&&b=2", "connection.url"),
        (
            "postgres://h/db?sslmode=require&ssl_mode=disable",
            "connection.tls.mode",
        ),
        ("postgres://h/db?x=1&x=2", "connection.options"),
        ("postgres://u:p@h/db?password=q", "connection.password"),
        ("postgres://u@h/db?user=v", "connection.user"),
        ("postgres://h/db?dbname=other", "connection.database"),
        ("rediss://h/0?sslmode=disable", "connection.tls.mode"),
        ("postgres://h/db?sslmode=sometimes", "connection.tls.mode"),
        ("postgres://h/%zz", "connection.database"),
        ("postgres://h/%C3", "connection.database"),
        ("postgres://h%2Cx/db", "connection.hosts[0].host"),
        ("postgres://a%3Ab/db", "connection.hosts[0].host"),
        ("Postgres://h/db", "connection.url"),
        ("postgres:/h/db", "connection.url"),
    ] {
        let e = ConnectionConfig::parse(url).expect_err(url);
        assert_eq!(e.field, field, "{url}: {e}");
    }
    // What is not ambiguous still parses.
    let c = ConnectionConfig::parse(
        "postgresql://u%40x:p%2Fw@h1:5433,[::1]:5434/d%2Fb?sslmode=verify-full&sslrootcert=/ca.pem&options=-c%20a%3Db&statement_timeout=a%2Bb",
    )
    .unwrap();
    assert_eq!(c.user.as_deref(), Some("u@x"));
    assert_eq!(c.database.as_deref(), Some("d/b"));
    assert_eq!(c.options["options"], "-c a=b");
    assert_eq!(c.options["statement_timeout"], "a+b");
    let socket = ConnectionConfig::parse("postgres://%2Fvar%2Frun%2Fpostgresql/db").unwrap();
    assert_eq!(socket.hosts[0].host, "/var/run/postgresql");
}

#[test]
fn a_replica_set_member_listed_twice_is_refused_by_name() {
    let pg = |url: &str| ConnectionConfig::parse(url).unwrap();
    let primary = pg("postgres://app@db1.example/orders");
    for (replicas, field, other) in [
        // The primary again among the replicas.
        (
            vec![
                pg("postgres://app@db2/orders"),
                pg("postgres://app@db1.example/orders"),
            ],
            "replica_set.replicas[1]",
            "replica_set.primary",
        ),
        // The primary again, its host name in another case: the same server.
        (
            vec![pg("postgres://app@DB1.example/orders")],
            "replica_set.replicas[0]",
            "replica_set.primary",
        ),
        // A replica twice, the second time with a password: still the same member.
        (
            vec![
                pg("postgres://app@db2/orders"),
                pg("postgres://app@db3/orders"),
                pg("postgres://app:hunter2@db3:5432/orders"),
            ],
            "replica_set.replicas[2]",
            "replica_set.replicas[1]",
        ),
    ] {
        let c = ReplicaSetConfig::new("rs", primary.clone(), replicas);
        let e = c.validate().expect_err("a member twice");
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().contains(other), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
    // Another database, user or port on the same host is another member.
    let c = ReplicaSetConfig::new(
        "rs",
        primary.clone(),
        vec![
            pg("postgres://app@db1.example/reports"),
            pg("postgres://audit@db1.example/orders"),
            pg("postgres://app@db1.example:5433/orders"),
        ],
    );
    c.validate().unwrap();
    // A host name's case is not part of the key; a Unix socket directory's is.
    assert_eq!(
        PoolKey::of(&pg("postgres://app@DB1.Example/orders")),
        PoolKey::of(&primary)
    );
    assert_ne!(
        PoolKey::of(&pg("postgres://app@%2Frun%2FPG/orders")),
        PoolKey::of(&pg("postgres://app@%2Frun%2Fpg/orders"))
    );
    // From TOML: the same error.
    let text = r#"
        name = "rs"
        primary = { backend = "sim", hosts = [{ host = "p", port = 1 }] }
        replicas = [
            { backend = "sim", hosts = [{ host = "r", port = 1 }] },
            { backend = "sim", hosts = [{ host = "r", port = 1 }] },
        ]
    "#;
    let e = toml::from_str::<ReplicaSetConfig>(text).expect_err("a member twice");
    assert!(e.to_string().contains("replica_set.replicas[1]"), "{e}");
}

#[test]
fn host_names_built_in_code_or_toml_follow_the_url_rules() {
    for bad in ["a:b", "[::1]", "a b", "a,b", "a/b", "a@b", "h%41"] {
        let c = ConnectionConfig::new("postgres", bad, 5432);
        assert_eq!(err_field(c.validate()), "connection.hosts[0].host", "{bad}");
        let text = format!("backend = \"postgres\"\nhosts = [{{ host = {bad:?}, port = 1 }}]");
        let e = toml::from_str::<ConnectionConfig>(&text).expect_err(&text);
        assert!(e.to_string().contains("connection.hosts[0].host"), "{e}");
    }
    for good in [
        "db",
        "10.0.0.1",
        "::1",
        "fe80::1",
        "/var/run/postgresql",
        "bücher.example",
    ] {
        ConnectionConfig::new("postgres", good, 5432)
            .validate()
            .unwrap();
    }
    let mut c = ConnectionConfig::sim("a");
    c.options.insert("sslmode".into(), "disable".into());
    assert_eq!(err_field(c.validate()), "connection.options");
    c.options.clear();
    c.backend = "my backend".into();
    assert_eq!(err_field(c.validate()), "connection.backend");
}

#[test]
fn to_url_with_password_exposes_it_and_display_does_not() {
    let mut c = ConnectionConfig::new("postgres", "db", 5432);
    c.user = Some("app".into());
    c.password = Some(Secret::new("s3/cr@t"));
    c.database = Some("orders".into());
    c.tls.mode = SslMode::Require;
    c.application_name = Some("api".into());
    let url = c.to_url_with_password();
    assert_eq!(
        url,
        "postgres://app:s3%2Fcr%40t@db:5432/orders?sslmode=require&application_name=api"
    );
    assert_eq!(ConnectionConfig::parse(&url).unwrap(), c);
    assert_eq!(c.to_string(), "postgres://app:***@db:5432/orders");
    assert_hidden("config", &config_texts(&c), "s3/cr@t");
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

/// Fragments that stress the URL grammar.
fn hostile_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "/", "//", "@", ":", "::", "[", "]", "[::1]", "%", "%0", "%00", "%2F", "%2f", "%40",
            "%3A", "%ZZ", "%C3", "%C3%A9", "?", "#", "&", "=", ",", ",,", "+", " ", "\0", "\n",
            "\u{7f}", "\u{85}", "é", "0", "65535", "65536", ":0", ":5432", "?sslmode=", "password=",
            "user=", "dbname=", "sslmode=require", "ssl_mode=disable", "application_name=",
        ])
        .prop_map(String::from),
        2 => "[a-z0-9.]{1,4}",
        1 => any::<char>().prop_map(String::from),
    ]
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop::collection::vec(hostile_piece(), 0..16).prop_map(|v| v.concat())
}

fn scheme() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "postgres://",
        "postgresql://",
        "redis://",
        "rediss://",
        "mysql://",
        "mariadb://",
        "sim://",
        "ftp://",
        "postgres:/",
        "",
    ])
    .prop_map(String::from)
}

/// A password: a distinctive frame around anything printable, URL delimiters included.
fn password() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9/@:%?#&=+ \\[\\],.~é-]{0,10}", "\\PC{0,10}",]
        .prop_map(|inner| format!("Pw9{inner}Zq7"))
}

/// Printable text (no control characters).
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9/@:%?#&=+ \\[\\],.~é-]{1,10}", "\\PC{1,10}"]
}

fn host() -> impl Strategy<Value = Host> {
    let name = prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9-]{0,6}){0,2}",
        any::<Ipv4Addr>().prop_map(|a| a.to_string()),
        any::<Ipv6Addr>().prop_map(|a| a.to_string()),
        "/[a-z0-9 ,:@%?#/._-]{0,12}",
        "[a-zé][a-z0-9é~_-]{0,6}",
    ];
    (name, 1..=u16::MAX).prop_map(|(host, port)| Host { host, port })
}

fn option_key() -> impl Strategy<Value = String> {
    text().prop_filter("not a parameter with its own field", |k| {
        ![
            "sslmode",
            "ssl_mode",
            "sslrootcert",
            "ssl_ca",
            "sslcert",
            "ssl_cert",
            "sslkey",
            "ssl_key",
            "application_name",
            "password",
            "user",
            "dbname",
        ]
        .contains(&k.as_str())
    })
}

fn path() -> impl Strategy<Value = Option<std::path::PathBuf>> {
    prop::option::of(text().prop_map(std::path::PathBuf::from))
}

/// A valid config of a URL backend.
fn valid_config() -> impl Strategy<Value = ConnectionConfig> {
    (
        prop::sample::select(vec!["postgres", "redis", "mysql", "sim"]),
        prop::collection::vec(host(), 1..4),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(password()),
        prop::sample::select(vec![
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyFull,
        ]),
        (path(), prop::option::of((text(), text()))),
        prop::option::of(text()),
        prop::collection::btree_map(option_key(), prop_oneof!["", text()], 0..4),
    )
        .prop_map(
            |(backend, hosts, database, user, password, mode, (ca, pair), app, options)| {
                ConnectionConfig {
                    backend: backend.into(),
                    hosts,
                    database,
                    user,
                    password: password.map(Secret::new),
                    tls: TlsConfig {
                        mode,
                        ca_file: ca,
                        client_cert: pair.as_ref().map(|(c, _)| c.into()),
                        client_key: pair.map(|(_, k)| k.into()),
                    },
                    application_name: app,
                    options,
                    path: None,
                }
            },
        )
        .prop_filter("valid", |c| c.validate().is_ok())
}

/// `c` as TOML, the password included (it is never serialized).
fn to_toml(c: &ConnectionConfig) -> String {
    let mut v = toml::Value::try_from(c).unwrap();
    if let Some(p) = &c.password {
        v.as_table_mut()
            .unwrap()
            .insert("password".into(), toml::Value::String(p.expose().into()));
    }
    toml::to_string(&v).unwrap()
}

/// Ways to break a valid config that both a URL and TOML can carry.
fn breakage() -> impl Strategy<Value = (usize, String)> {
    (0usize..10, "[\\x00-\\x1f\\x7f]")
}

fn break_config(c: &mut ConnectionConfig, (which, ctl): &(usize, String)) {
    let last = c.hosts.len() - 1;
    match which {
        0 => c.hosts[last].port = 0,
        1 => c.hosts[last].host = format!("h{ctl}"),
        2 => c.hosts[0].host = "a:b".into(),
        3 => c.hosts[last].host = "a,b".into(),
        4 => c.database = Some(format!("d{ctl}b")),
        5 => c.user = Some(format!("{ctl}u")),
        6 => c.password = Some(Secret::new(format!("Pw9{ctl}Zq7"))),
        7 => c.application_name = Some(format!("a{ctl}")),
        8 => {
            c.options.insert("k".into(), format!("v{ctl}"));
        }
        _ => {
            c.options.insert(format!("k{ctl}"), "v".into());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_any_string(s in any::<String>()) {
        let _ = ConnectionConfig::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_hostile_urls(scheme in scheme(), rest in hostile_string()) {
        if let Ok(c) = ConnectionConfig::parse(&format!("{scheme}{rest}")) {
            // Whatever parses is valid and writes back out to itself.
            prop_assert!(c.validate().is_ok());
            prop_assert_eq!(ConnectionConfig::parse(&c.to_url_with_password()), Ok(c));
        }
    }

    #[test]
    fn a_password_never_shows_whatever_surrounds_it(
        scheme in scheme(),
        user in prop_oneof!["", "[a-z]{1,4}", hostile_string()],
        pw in password(),
        rest in hostile_string(),
        in_query in any::<bool>(),
    ) {
        let url = if in_query {
            format!("{scheme}{user}@{rest}?password={pw}")
        } else {
            format!("{scheme}{user}:{pw}@{rest}")
        };
        let decoded = decode_lossy(&pw);
        match ConnectionConfig::parse(&url) {
            Ok(c) => {
                let shown = config_texts(&c);
                assert_hidden(&url, &shown, &pw);
                assert_hidden(&url, &shown, &decoded);
                if let Some(p) = &c.password {
                    assert_hidden(&url, &shown, p.expose());
                }
            }
            Err(e) => {
                let shown = error_texts(&e);
                assert_hidden(&url, &shown, &pw);
                assert_hidden(&url, &shown, &decoded);
            }
        }
    }

    #[test]
    fn a_valid_config_round_trips_through_its_url(c in valid_config()) {
        let url = c.to_url_with_password();
        prop_assert_eq!(ConnectionConfig::parse(&url), Ok(c.clone()), "{}", url);
        // And through TOML, the serde path.
        let text = to_toml(&c);
        let read = toml::from_str::<ConnectionConfig>(&text).map_err(|e| e.to_string());
        prop_assert_eq!(read, Ok(c));
    }

    #[test]
    fn display_and_debug_never_show_the_password(c in valid_config()) {
        let shown = config_texts(&c);
        if let Some(p) = &c.password {
            assert_hidden("config", &shown, p.expose());
        }
        prop_assert!(!c.to_string().contains('?'), "Display has no query: {}", c);
    }

    #[test]
    fn url_toml_and_code_refuse_the_same_things(c in valid_config(), b in breakage()) {
        let mut c = c;
        break_config(&mut c, &b);
        let field = c.validate().expect_err("broken").field;
        let by_url = ConnectionConfig::parse(&c.to_url_with_password()).expect_err("URL");
        prop_assert_eq!(&by_url.field, &field);
        let text = to_toml(&c);
        let by_toml = toml::from_str::<ConnectionConfig>(&text)
            .expect_err("TOML")
            .to_string();
        prop_assert!(by_toml.contains(&format!("`{field}`")), "{} vs {}", field, by_toml);
        if let Some(p) = &c.password {
            assert_hidden("URL error", &error_texts(&by_url), p.expose());
            assert_hidden("TOML error", &by_toml, p.expose());
        }
    }

    #[test]
    fn any_duration_is_accepted_or_refused_by_name(
        secs in prop_oneof![any::<u64>(), 0..=40_000_000u64],
        nanos in 0u32..1_000_000_000,
        i in 0usize..15,
    ) {
        let d = Duration::new(secs, nanos);
        let (field, set) = pool_duration_fields().swap_remove(i);
        let mut c = PoolConfig::default();
        set(&mut c, d);
        match c.validate() {
            Ok(()) => prop_assert!(d <= PoolConfig::MAX_DURATION),
            Err(e) if d > PoolConfig::MAX_DURATION => {
                prop_assert_eq!(e.field, format!("pool.{field}"))
            }
            Err(_) => {} // zero, or out of step with a related field
        }
        let s = SupervisorConfig {
            health_timeout: d,
            ..SupervisorConfig::default()
        };
        if s.validate().is_ok() {
            prop_assert!(s.health_timeout.checked_mul(2).is_some());
        }
    }

    #[test]
    fn any_sizes_are_accepted_or_refused_by_name(
        max_size in prop_oneof![any::<u32>(), 0..=12_000u32],
        max_overflow in prop_oneof![any::<u32>(), 0..=12_000u32],
        max_waiters in prop_oneof![any::<usize>(), 0..=1_200_000usize],
        max_connecting in prop_oneof![any::<u32>(), 0..=12_000u32],
        min_idle in prop_oneof![any::<u32>(), 0..=12_000u32],
        max_pools in prop_oneof![any::<usize>(), 0..=120_000usize],
    ) {
        let c = PoolConfig {
            max_size,
            max_overflow,
            max_waiters,
            max_connecting,
            min_idle,
            ..PoolConfig::default()
        };
        let fields = [
            "pool.max_size",
            "pool.max_overflow",
            "pool.max_waiters",
            "pool.max_connecting",
            "pool.min_idle",
        ];
        match c.validate() {
            Err(e) => prop_assert!(fields.contains(&e.field.as_str()), "{}", e),
            Ok(()) => {
                let cap = (PoolConfig::MAX_SIZE + PoolConfig::MAX_OVERFLOW) as usize;
                prop_assert!(c.capacity() <= cap);
                prop_assert!(c.max_waiters <= PoolConfig::MAX_WAITERS);
            }
        }
        let s = SupervisorConfig {
            max_pools,
            ..SupervisorConfig::default()
        };
        let in_range = (1..=SupervisorConfig::MAX_POOLS).contains(&max_pools);
        prop_assert_eq!(s.validate().is_ok(), in_range);
    }
}

#[test]
fn options_map_from_toml_keeps_empty_values() {
    let text = "backend = \"postgres\"\nhosts = [{ host = \"a\", port = 1 }]\noptions = { statement_timeout = \"\" }";
    let c: ConnectionConfig = toml::from_str(text).unwrap();
    let mut want = BTreeMap::new();
    want.insert("statement_timeout".to_string(), String::new());
    assert_eq!(c.options, want);
    assert_eq!(
        ConnectionConfig::parse(&c.to_url_with_password()).unwrap(),
        c
    );
}

// ----- run-time arguments ---------------------------------------------------------------

/// What a running supervisor and pool are handed at run time is hostile input too:
/// durations at their maximum saturate (never "overflow when adding duration to
/// instant", never a dead actor), sizes past the documented maximum are refused naming
/// the field, and nothing is allocated in proportion to a number asked for.
#[actix::test]
async fn hostile_run_time_arguments_never_panic_or_stop_an_actor() {
    use poolwarden::backends::sim::SimBackend;
    use poolwarden::messages::{Acquire, Probe};
    use poolwarden::{Error, SupervisorHandle};

    let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())
        .expect("default config");
    let pool = sup
        .pool(ConnectionConfig::sim("hostile"))
        .await
        .expect("a pool");
    drop(pool.acquire_timeout(Duration::MAX).await.expect("served"));
    let via_message = sup
        .addr()
        .send(Acquire::new(pool.key()).timeout(Duration::MAX))
        .await
        .expect("the supervisor runs");
    drop(via_message.expect("served"));
    let actor = pool.actor().expect("the pool actor runs");
    actor
        .send(Probe {
            timeout: Duration::MAX,
        })
        .await
        .expect("the pool actor runs")
        .expect("healthy");
    match pool.resize(u32::MAX, u32::MAX).await {
        Err(Error::Config(e)) => assert_eq!(e.field, "resize.max_size", "{e}"),
        other => panic!("expected a config error naming resize.max_size, got {other:?}"),
    }
    let opened = pool.warm(usize::MAX).await.expect("the pool actor runs");
    assert!(
        opened <= PoolConfig::default().max_size as usize,
        "{opened}"
    );
    sup.reap_idle(Duration::MAX)
        .await
        .expect("the supervisor runs");
    sup.health().await.expect("the supervisor runs");
    assert!(pool.actor().is_some(), "the pool actor survived");
    let report = sup.shutdown(Duration::MAX).await.expect("shut down");
    assert_eq!(report.still_checked_out, 0);
}
