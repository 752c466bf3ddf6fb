use super::*;

#[test]
fn failures_are_classified_and_described() {
    let wrong_name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
    assert_eq!(error_kind(&wrong_name), BackendErrorKind::Config);
    assert_eq!(
        describe(&wrong_name, "127.0.0.1"),
        "TLS: certificate not valid for host 127.0.0.1"
    );
    let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
    assert_eq!(error_kind(&unknown), BackendErrorKind::Config);
    assert!(describe(&unknown, "db").contains("not signed by a trusted CA"));
    let refused = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
    assert_eq!(error_kind(&refused), BackendErrorKind::Auth);
    assert_eq!(
        describe(&refused, "db"),
        "TLS: db requires a client certificate"
    );
    let garbled = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
    assert_eq!(error_kind(&garbled), BackendErrorKind::Connect);

    // Found inside an io::Error, as tokio-rustls reports it.
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, wrong_name.clone());
    assert_eq!(find_rustls_error(&io), Some(&wrong_name));
    assert_eq!(find_rustls_error(&std::io::Error::other("reset")), None);
}

#[test]
fn unreadable_files_are_config_errors() {
    let missing = Path::new("/nonexistent/poolwarden/ca.pem");
    let err = read_certs(missing).unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Config);
    assert!(err.to_string().contains("cannot read"), "{err}");
    let dir = std::env::temp_dir().join(format!("pw-tls-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(read_certs(&empty)
        .unwrap_err()
        .to_string()
        .contains("no certificate"));
    assert!(read_key(&empty)
        .unwrap_err()
        .to_string()
        .contains("no private key"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(any(feature = "postgres", feature = "redis"))]
#[test]
fn every_mode_builds_a_client_config() {
    for mode in [SslMode::Prefer, SslMode::Require, SslMode::VerifyFull] {
        let tls = TlsConfig {
            mode,
            ..TlsConfig::default()
        };
        client_config(&tls).unwrap();
    }
    let cache = TlsCache::<u8>::default();
    let tls = TlsConfig::default();
    assert_eq!(cache.get(&tls, |_| 7).unwrap(), 7);
    assert_eq!(cache.clone().get(&tls, |_| 8).unwrap(), 7, "cached");
}
