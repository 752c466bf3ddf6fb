//! TLS for PostgreSQL: the connector per TLS setting (from the shared
//! [`TlsCache`](crate::backends::tls::TlsCache)), and the connector that puts the wire tap
//! above the decryption.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::session::Session;
use super::tap::{Socket, Tap};
use super::PostgresBackend;
use crate::connection::{SslMode, TlsConfig};
use crate::error::BackendError;

impl PostgresBackend {
    /// The rustls connector for `tls` (None for `disable`), cached until a file changes.
    pub(super) fn tls_connector(
        &self,
        tls: &TlsConfig,
    ) -> Result<Option<MakeRustlsConnect>, BackendError> {
        if tls.mode == SslMode::Disable {
            return Ok(None);
        }
        self.tls_cache.get(tls, MakeRustlsConnect::new).map(Some)
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
