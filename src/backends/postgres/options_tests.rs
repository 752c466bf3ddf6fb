use super::*;

#[test]
fn options_are_parsed_and_unknown_ones_rejected() {
    let cfg = ConnectionConfig::parse(
        "postgres://u@h/db?connect_timeout=3&statement_timeout=5s&reset=discard_all&options=-c%20search_path%3Dapp",
    )
    .unwrap();
    let o = Options::parse(&cfg).unwrap();
    assert_eq!(o.connect_timeout, Some(Duration::from_secs(3)));
    assert_eq!(o.reset, ResetMode::DiscardAll);
    assert_eq!(
        o.server_options.as_deref(),
        Some("-c search_path=app -c statement_timeout=5s")
    );
    for bad in [
        "connect_timeout=soon",
        "statement_timeout=5 s;drop",
        "reset=sometimes",
        "statment_timeout=5s",
        "target_session_attrs=primary",
    ] {
        // Set in code past `validate` (which refuses the unknown key itself): the parser
        // refuses each on its own too.
        let (key, value) = bad.split_once('=').unwrap();
        let mut cfg = ConnectionConfig::parse("postgres://u@h/db").unwrap();
        cfg.options.insert(key.into(), value.into());
        let e = Options::parse(&cfg).unwrap_err();
        assert_eq!(e.kind(), BackendErrorKind::Config, "{bad}: {e}");
    }
    assert_eq!(
        parse_duration("500ms", Duration::from_secs(1)),
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        parse_duration("0", Duration::from_secs(1)),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_duration("1min", Duration::from_secs(1)),
        Some(Duration::from_secs(60))
    );
    assert_eq!(parse_duration("ms", Duration::from_secs(1)), None);
}

#[test]
fn pooler_is_parsed_and_keeps_the_startup_packet_clean() {
    let parse = |q: &str| {
        Options::parse(&ConnectionConfig::parse(&format!("postgres://u@h/db?{q}")).unwrap())
    };
    let o = parse("statement_timeout=5s").unwrap();
    assert_eq!(o.pooler, Pooler::None);
    assert_eq!(o.server_options.as_deref(), Some("-c statement_timeout=5s"));

    for (q, pooler) in [
        (
            "pooler=transaction&statement_timeout=5s",
            Pooler::Transaction,
        ),
        ("pooler=session&statement_timeout=5s", Pooler::Session),
    ] {
        let o = parse(q).unwrap();
        assert_eq!(o.pooler, pooler);
        assert_eq!(
            o.server_options, None,
            "{q}: no `options` startup parameter"
        );
        assert_eq!(o.statement_timeout.as_deref(), Some("5s"));
    }
    assert_eq!(parse("pooler=none").unwrap().pooler, Pooler::None);

    let e = parse("pooler=pgbouncer").unwrap_err();
    assert_eq!(e.kind(), BackendErrorKind::Config);
    assert!(e.to_string().contains("option `pooler`"), "{e}");
    assert!(e.to_string().contains("none, transaction, session"), "{e}");

    let e = parse("pooler=transaction&options=-c%20search_path%3Dapp").unwrap_err();
    assert_eq!(e.kind(), BackendErrorKind::Config);
    assert!(e.to_string().contains("option `options`"), "{e}");
}
