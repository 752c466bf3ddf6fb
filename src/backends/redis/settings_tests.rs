use super::*;
use crate::error::BackendErrorKind;
use crate::secret::Secret;

#[test]
fn settings_check_the_config() {
    let s = Settings::from_config(
        &ConnectionConfig::parse(
            "redis://app:pw@h:1/4?application_name=api&response_timeout=250ms",
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(s.db, 4);
    assert_eq!(s.info.username(), Some("app"));
    assert_eq!(s.info.password(), Some("pw"));
    assert_eq!(s.name.as_deref(), Some("api"));
    assert_eq!(s.response_timeout, Some(Duration::from_millis(250)));
    assert!(!s.tls, "prefer is clear text: Redis has no TLS negotiation");
    for url in ["rediss://h/0", "redis://h/0?sslmode=require"] {
        let s = Settings::from_config(&ConnectionConfig::parse(url).unwrap()).unwrap();
        assert!(s.tls, "{url}");
    }

    for (url, field) in [
        ("redis://h/x", "connection.database"),
        ("redis://h/-1", "connection.database"),
        (
            "redis://h/0?application_name=a%20b",
            "connection.application_name",
        ),
        (
            "redis://h/0?response_timeout=soon",
            "connection.options.response_timeout",
        ),
        ("mysql://h/0", "connection.backend"),
    ] {
        let mut cfg = ConnectionConfig::parse(url).unwrap();
        cfg.password = Some(Secret::new("hunter2"));
        let err = match Settings::from_config(&cfg) {
            Err(e) => e,
            Ok(_) => panic!("{url} was accepted"),
        };
        assert_eq!(err.kind(), BackendErrorKind::Config, "{url}");
        assert!(err.to_string().contains(field), "{url}: {err}");
        assert!(!format!("{err:?}").contains("hunter2"));
    }
}
