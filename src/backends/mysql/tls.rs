//! TLS for MySQL / MariaDB: mysql_async's [`SslOpts`] for a [`TlsConfig`].
//!
//! mysql_async builds the rustls client configuration itself (it takes no
//! `rustls::ClientConfig`), from the same files; they are read here first so that a missing
//! or unusable file is a [`Config`](crate::BackendErrorKind::Config) error naming the field
//! before any connection is attempted.

use ::mysql_async::{ClientIdentity, SslOpts};
use rustls::pki_types::PrivateKeyDer;

use crate::backends::tls::{read_certs, read_key, tls_config_error};
use crate::connection::{SslMode, TlsConfig};
use crate::error::BackendError;

/// mysql_async's TLS options for `tls`: none for `disable` and `prefer` (mysql_async cannot
/// fall back to clear text when the server has no TLS); for `require`, TLS without
/// verification, or, with a CA file, the chain verified against it (the host name is not
/// meant to be checked); for `verify-full`, chain and host name, against the CA file or else
/// the webpki roots. A client certificate and key are presented when configured.
pub(super) fn ssl_opts(tls: &TlsConfig) -> Result<Option<SslOpts>, BackendError> {
    if matches!(tls.mode, SslMode::Disable | SslMode::Prefer) {
        return Ok(None);
    }
    let mut ssl = SslOpts::default();
    if let Some(ca) = &tls.ca_file {
        read_certs(ca)?;
        ssl = ssl
            .with_root_certs(vec![ca.clone().into()])
            .with_disable_built_in_roots(true);
    }
    if tls.mode == SslMode::Require {
        ssl = match tls.ca_file {
            None => ssl.with_danger_accept_invalid_certs(true),
            Some(_) => ssl.with_danger_skip_domain_validation(true),
        };
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
        read_certs(cert)?;
        // mysql_async reads the first RSA (PKCS#1) key of the file and nothing else.
        if !matches!(read_key(key)?, PrivateKeyDer::Pkcs1(_)) {
            return Err(tls_config_error(format!(
                "the client key in {} must be an RSA key in PKCS#1 PEM \
                 (`BEGIN RSA PRIVATE KEY`): mysql_async reads no other kind",
                key.display()
            )));
        }
        ssl = ssl.with_client_identity(Some(ClientIdentity::new(
            cert.clone().into(),
            key.clone().into(),
        )));
    }
    Ok(Some(ssl))
}
