use super::*;

#[test]
fn errors_are_classified() {
    let auth = RedisError::from((
        ErrorKind::AuthenticationFailed,
        "Password authentication failed",
    ));
    assert_eq!(classify(&auth), BackendErrorKind::Auth);
    let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(classify(&io), BackendErrorKind::Connect);
    let cfg = RedisError::from((ErrorKind::InvalidClientConfig, "bad"));
    assert_eq!(classify(&cfg), BackendErrorKind::Config);
    let full = RedisError::from((
        ErrorKind::Client,
        "ERR",
        "max number of clients reached".to_string(),
    ));
    assert_eq!(classify(&full), BackendErrorKind::Capacity);
}
