//! TLS through rustls: the client configuration (cached per TLS setting, rebuilt when a file
//! changes), the certificate verifiers for `prefer` / `require` / *verify-ca*, and the
//! connector that puts the wire tap above the decryption.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::session::Session;
use super::tap::{Socket, Tap};
use super::PostgresBackend;
use crate::connection::{SslMode, TlsConfig};
use crate::error::{BackendError, BackendErrorKind};

#[derive(Clone)]
pub(super) struct CachedTls {
    stamp: Vec<Option<(SystemTime, u64)>>,
    connector: MakeRustlsConnect,
}

fn file_stamp(path: Option<&Path>) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path?).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl PostgresBackend {
    /// The rustls connector for `tls` (None for `disable`), cached until a file changes.
    pub(super) fn tls_connector(
        &self,
        tls: &TlsConfig,
    ) -> Result<Option<MakeRustlsConnect>, BackendError> {
        if tls.mode == SslMode::Disable {
            return Ok(None);
        }
        let stamp = vec![
            file_stamp(tls.ca_file.as_deref()),
            file_stamp(tls.client_cert.as_deref()),
            file_stamp(tls.client_key.as_deref()),
        ];
        if let Some(c) = self.tls_cache.lock().get(tls) {
            if c.stamp == stamp {
                return Ok(Some(c.connector.clone()));
            }
        }
        let connector = MakeRustlsConnect::new(client_config(tls)?);
        self.tls_cache.lock().insert(
            tls.clone(),
            CachedTls {
                stamp,
                connector: connector.clone(),
            },
        );
        Ok(Some(connector))
    }
}

fn tls_config_error(what: impl fmt::Display) -> BackendError {
    BackendError::new(
        BackendErrorKind::Config,
        format!("TLS configuration: {what}"),
    )
}

fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, BackendError> {
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

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, BackendError> {
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

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, BackendError> {
    let pem = std::fs::read(path)
        .map_err(|e| tls_config_error(format!("cannot read {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| tls_config_error(format!("bad PEM in {}: {e}", path.display())))?
        .ok_or_else(|| tls_config_error(format!("no private key in {}", path.display())))
}

/// `sslmode=prefer/require` without a root certificate: any certificate is accepted (no
/// authentication of the server, as in libpq), but handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

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
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

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

type RustlsConnect = <MakeRustlsConnect as MakeTlsConnect<Tap<Socket>>>::TlsConnect;
type RustlsStream = <MakeRustlsConnect as MakeTlsConnect<Tap<Socket>>>::Stream;

/// Hands tokio-postgres a TLS stream with a tap above the decryption.
pub(super) struct TapTls {
    pub(super) inner: Option<RustlsConnect>,
    pub(super) session: Arc<Session>,
}

impl TlsConnect<Tap<Socket>> for TapTls {
    type Stream = Tap<RustlsStream>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: Tap<Socket>) -> Self::Future {
        Box::pin(async move {
            let inner = self.inner.ok_or("TLS is not configured")?;
            let tls = inner.connect(stream).await?;
            Ok(Tap::over_tls(tls, self.session))
        })
    }
}
