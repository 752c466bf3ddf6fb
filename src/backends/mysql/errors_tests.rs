use super::*;

#[test]
fn server_errors_are_classified() {
    let server = |code| {
        MyError::Server(mysql_async::ServerError {
            code,
            message: "m".into(),
            state: "28000".into(),
        })
    };
    assert_eq!(classify(&server(1045)), BackendErrorKind::Auth);
    assert_eq!(classify(&server(1049)), BackendErrorKind::Config);
    assert_eq!(classify(&server(1040)), BackendErrorKind::Capacity);
    assert_eq!(classify(&server(3159)), BackendErrorKind::Config);
    assert_eq!(
        classify(&MyError::Driver(DriverError::ConnectionClosed)),
        BackendErrorKind::Connect
    );
    assert_eq!(
        classify(&MyError::Driver(DriverError::NoClientSslFlagFromServer)),
        BackendErrorKind::Config
    );

    let host = Host {
        host: "127.0.0.1".into(),
        port: 3306,
    };
    let bad_cert = MyError::from(rustls::Error::InvalidCertificate(
        rustls::CertificateError::NotValidForName,
    ));
    let err = connect_error(bad_cert, &host, None);
    assert_eq!(err.kind(), BackendErrorKind::Config);
    assert_eq!(
        err.to_string(),
        "mysql at 127.0.0.1:3306: TLS: certificate not valid for host 127.0.0.1"
    );
}
