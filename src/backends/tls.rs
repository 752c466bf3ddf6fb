//! TLS through rustls, shared by the PostgreSQL, Redis and MySQL backends: the client
//! configuration for a [`TlsConfig`](crate::connection::TlsConfig) (PostgreSQL and Redis hand it to their TLS stream;
//! mysql_async builds its own from the same files), cached per TLS setting and rebuilt when a
//! file changes; the certificate verifiers for `prefer` / `require` / *verify-ca*; and how a
//! TLS failure is classified and described.
//!
//! ring is the crate's one crypto provider: no C toolchain, and no second provider in the
//! process (rustls then cannot pick a default).

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;
#[cfg(any(feature = "postgres", feature = "redis"))]
use std::{collections::HashMap, sync::Arc, time::SystemTime};

#[cfg(any(feature = "postgres", feature = "redis"))]
use parking_lot::Mutex;
#[cfg(any(feature = "postgres", feature = "redis"))]
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
#[cfg(any(feature = "postgres", feature = "redis"))]
use rustls::client::WebPkiServerVerifier;
#[cfg(any(feature = "postgres", feature = "redis"))]
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
#[cfg(any(feature = "postgres", feature = "redis"))]
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError};
#[cfg(any(feature = "postgres", feature = "redis"))]
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::support::chain;
#[cfg(any(feature = "postgres", feature = "redis"))]
use crate::connection::{SslMode, TlsConfig};
use crate::error::{BackendError, BackendErrorKind};

/// One client-side TLS object (a connector) per TLS setting, built from [`client_config`]
/// and rebuilt when the CA, certificate or key file changes on disk (rotation). Clones share
/// the cache.
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) struct TlsCache<T> {
    entries: Arc<Mutex<HashMap<TlsConfig, (Stamp, T)>>>,
}

/// Modification time and size of the CA, certificate and key files, when they exist.
#[cfg(any(feature = "postgres", feature = "redis"))]
type Stamp = Vec<Option<(SystemTime, u64)>>;

#[cfg(any(feature = "postgres", feature = "redis"))]
impl<T> Default for TlsCache<T> {
    fn default() -> Self {
        Self {
            entries: Arc::default(),
        }
    }
}

#[cfg(any(feature = "postgres", feature = "redis"))]
impl<T> Clone for TlsCache<T> {
    fn clone(&self) -> Self {
        Self {
            entries: Arc::clone(&self.entries),
        }
    }
}

#[cfg(any(feature = "postgres", feature = "redis"))]
impl<T> fmt::Debug for TlsCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCache")
            .field("entries", &self.entries.lock().len())
            .finish()
    }
}

#[cfg(any(feature = "postgres", feature = "redis"))]
fn file_stamp(path: Option<&Path>) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path?).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(any(feature = "postgres", feature = "redis"))]
impl<T: Clone> TlsCache<T> {
    /// The connector for `tls`, made by `make` from a fresh [`client_config`] when there is
    /// none yet or one of its files changed.
    pub(crate) fn get(
        &self,
        tls: &TlsConfig,
        make: impl FnOnce(rustls::ClientConfig) -> T,
    ) -> Result<T, BackendError> {
        let stamp = vec![
            file_stamp(tls.ca_file.as_deref()),
            file_stamp(tls.client_cert.as_deref()),
            file_stamp(tls.client_key.as_deref()),
        ];
        if let Some((s, connector)) = self.entries.lock().get(tls) {
            if *s == stamp {
                return Ok(connector.clone());
            }
        }
        let connector = make(client_config(tls)?);
        self.entries
            .lock()
            .insert(tls.clone(), (stamp, connector.clone()));
        Ok(connector)
    }
}

pub(crate) fn tls_config_error(what: impl fmt::Display) -> BackendError {
    BackendError::new(
        BackendErrorKind::Config,
        format!("TLS configuration: {what}"),
    )
}

/// The rustls client configuration for `tls` (any mode but `disable`): `verify-full` checks
/// the chain and the host name; `prefer` / `require` check nothing but the handshake
/// signature, or, with a CA file, the chain only (*verify-ca*, as libpq does).
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, BackendError> {
    // ring is the crate's one crypto provider (no C toolchain, no second provider in the
    // process). rustls 0.23.48 deprecates ring's provider only for lacking post-quantum key
    // exchange, which ring does not offer.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_config_error)?;
    let roots = || -> Result<Arc<rustls::RootCertStore>, BackendError> {
        let mut roots = rustls::RootCertStore::empty();
        match &tls.ca_file {
            Some(path) => {
                for cert in read_certs(path)? {
                    roots.add(cert).map_err(|e| {
                        tls_config_error(format!("bad CA certificate in {}: {e}", path.display()))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(Arc::new(roots))
    };
    let webpki = |roots| {
        WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(tls_config_error)
    };
    let builder = match (tls.mode, &tls.ca_file) {
        (SslMode::VerifyFull, _) => builder.with_webpki_verifier(webpki(roots()?)?),
        // libpq: an explicit root certificate makes prefer/require verify the chain.
        (_, Some(_)) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki(roots()?)?))),
        (_, None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone()))),
    };
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| tls_config_error(format!("client certificate/key: {e}"))),
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The certificates of a PEM file (at least one).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, BackendError> {
    let pem = std::fs::read(path)
        .map_err(|e| tls_config_error(format!("cannot read {}: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_config_error(format!("bad PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_config_error(format!(
            "no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, BackendError> {
    let pem = std::fs::read(path)
        .map_err(|e| tls_config_error(format!("cannot read {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| tls_config_error(format!("bad PEM in {}: {e}", path.display())))?
        .ok_or_else(|| tls_config_error(format!("no private key in {}", path.display())))
}

/// `sslmode=prefer/require` without a root certificate: any certificate is accepted (no
/// authentication of the server, as in libpq), but handshake signatures are still checked.
#[cfg(any(feature = "postgres", feature = "redis"))]
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

#[cfg(any(feature = "postgres", feature = "redis"))]
impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// *verify-ca*: the chain must verify against the roots; the name is not checked.
#[cfg(any(feature = "postgres", feature = "redis"))]
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

#[cfg(any(feature = "postgres", feature = "redis"))]
impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The rustls error somewhere in `e`'s source chain (inside `io::Error`s too), if any.
pub(crate) fn find_rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    chain(e)
        .into_iter()
        .find_map(|c| c.downcast_ref::<rustls::Error>())
}

/// How a TLS failure counts: a server certificate that fails verification is a
/// configuration error (the endpoint is up; retrying cannot help, and it must not open the
/// breaker); the server refusing our client certificate is an authentication error;
/// anything else in the handshake (a reset, a garbled message) is a connect error.
pub(crate) fn error_kind(e: &rustls::Error) -> BackendErrorKind {
    match e {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::UnsupportedNameType => BackendErrorKind::Config,
        rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::CertificateRequired
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::AccessDenied,
        ) => BackendErrorKind::Auth,
        _ => BackendErrorKind::Connect,
    }
}

/// What a TLS failure with `host` was, in a few words: `TLS: certificate not valid for host
/// 127.0.0.1`.
pub(crate) fn describe(e: &rustls::Error, host: &str) -> String {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!("TLS: certificate not valid for host {host}")
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            format!("TLS: certificate of {host} is not signed by a trusted CA")
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("TLS: certificate of {host} has expired")
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            format!("TLS: certificate of {host} is not valid yet")
        }
        rustls::Error::InvalidCertificate(other) => {
            format!("TLS: certificate of {host} rejected: {other}")
        }
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            format!("TLS: {host} requires a client certificate")
        }
        rustls::Error::AlertReceived(alert) if error_kind(e) == BackendErrorKind::Auth => {
            format!("TLS: {host} refused the client certificate ({alert:?})")
        }
        other => format!("TLS handshake with {host} failed: {other}"),
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
