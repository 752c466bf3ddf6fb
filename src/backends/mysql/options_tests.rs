use super::*;
use crate::error::BackendErrorKind;
use crate::secret::Secret;

#[test]
fn settings_check_the_config() {
    let cfg = ConnectionConfig::parse(
        "mariadb://app:pw@h:3307/shop?reset=connection&wait_timeout=60&prefer_socket=true",
    )
    .unwrap();
    let s = Settings::from_config(&cfg).unwrap();
    assert_eq!(s.reset, ResetMode::Connection);
    assert_eq!(s.wait_timeout, Some(60));
    assert!(s.prefer_socket);
    assert!(s.ssl.is_none(), "prefer: clear text");
    let opts = mysql_async::Opts::from(s.opts(&cfg, &cfg.hosts[0]));
    assert_eq!(opts.user(), Some("app"));
    assert_eq!(opts.pass(), Some("pw"));
    assert_eq!(opts.db_name(), Some("shop"));
    assert_eq!((opts.ip_or_hostname(), opts.tcp_port()), ("h", 3307));

    let mut sock = ConnectionConfig::parse("mysql://root@localhost/x").unwrap();
    sock.hosts[0].host = "/run/mysqld/mysqld.sock".into();
    let s = Settings::from_config(&sock).unwrap();
    assert_eq!(s.reset, ResetMode::Rollback);
    let opts = mysql_async::Opts::from(s.opts(&sock, &sock.hosts[0]));
    assert_eq!(opts.socket(), Some("/run/mysqld/mysqld.sock"));

    let ssl = |url: &str| {
        let cfg = ConnectionConfig::parse(url).unwrap();
        let s = Settings::from_config(&cfg).unwrap();
        mysql_async::Opts::from(s.opts(&cfg, &cfg.hosts[0]))
            .ssl_opts()
            .cloned()
    };
    assert!(ssl("mysql://h/x?sslmode=disable").is_none());
    let require = ssl("mysql://h/x?sslmode=require").expect("TLS");
    assert!(require.accept_invalid_certs());
    let full = ssl("mysql://h/x?sslmode=verify-full").expect("TLS");
    assert!(!full.accept_invalid_certs() && !full.skip_domain_validation());

    for (url, field) in [
        (
            "mysql://h/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "TLS configuration: cannot read /nonexistent/ca.pem",
        ),
        ("mysql://h/x?reset=sometimes", "connection.options.reset"),
        (
            "mysql://h/x?wait_timeout=1m",
            "connection.options.wait_timeout",
        ),
        (
            "mysql://h/x?prefer_socket=yes",
            "connection.options.prefer_socket",
        ),
        ("redis://h/0", "connection.backend"),
    ] {
        let mut cfg = ConnectionConfig::parse(url).unwrap();
        cfg.password = Some(Secret::new("hunter2"));
        let err = match Settings::from_config(&cfg) {
            Err(e) => e,
            Ok(_) => panic!("{url} was accepted"),
        };
        assert_eq!(err.kind(), BackendErrorKind::Config, "{url}");
        assert!(err.to_string().contains(field), "{url}: {err}");
    }
}
