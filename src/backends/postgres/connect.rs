//! Opening one connection to one host: the socket (TCP or Unix), the wire tap, TLS, the
//! connection task and the `target_session_attrs` check.

use std::io;
use std::sync::Arc;

use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::connection::{PgConnection, Pooler};
use super::errors::{pg_connect_error, pg_error, Stage};
use super::options::Options;
use super::session::Session;
use super::tap::{Socket, Tap};
use super::tls::TapTls;
use crate::connection::{ConnectionConfig, Host, SslMode};
use crate::error::{BackendError, BackendErrorKind};

pub(super) async fn connect_host(
    config: &ConnectionConfig,
    opts: &Options,
    tls: Option<MakeRustlsConnect>,
    host: &Host,
) -> Result<PgConnection, BackendError> {
    let unix = host.is_unix_socket();
    let where_ = if unix {
        format!("{}/.s.PGSQL.{}", host.host, host.port)
    } else {
        host.to_string()
    };
    let password = config.password.as_ref();

    let mut pg = tokio_postgres::Config::new();
    if let Some(user) = &config.user {
        pg.user(user);
    }
    if let Some(pw) = password {
        pg.password(pw.expose());
    }
    if let Some(db) = &config.database {
        pg.dbname(db);
    }
    if let Some(app) = &config.application_name {
        pg.application_name(app);
    }
    if let Some(o) = &opts.server_options {
        pg.options(o);
    }
    let mode = if unix {
        SslMode::Disable
    } else {
        config.tls.mode
    };
    pg.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });

    let socket = if unix {
        UnixStream::connect(&where_)
            .await
            .map(Socket::Unix)
            .map_err(|e| io_error(e, &where_))?
    } else {
        Socket::Tcp(tcp_connect(host).await?)
    };

    let session = Arc::new(Session::new());
    let tap = Tap::new(socket, Arc::clone(&session), mode != SslMode::Disable);
    let tls = match (mode, tls) {
        (SslMode::Disable, _) | (_, None) => None,
        (_, Some(mut make)) => Some(
            <MakeRustlsConnect as MakeTlsConnect<Tap<Socket>>>::make_tls_connect(
                &mut make, &host.host,
            )
            .map_err(|e| {
                BackendError::new(
                    BackendErrorKind::Config,
                    format!("`{}` is not a valid TLS server name: {e}", host.host),
                )
            })?,
        ),
    };
    let connector = TapTls {
        inner: tls,
        session: Arc::clone(&session),
    };
    let user = config.user.as_deref().unwrap_or("<default>");
    let (client, connection) = pg.connect_raw(tap, connector).await.map_err(|e| {
        pg_connect_error(
            e,
            &format!("connecting to {where_} as {user}"),
            &host.host,
            password,
        )
    })?;
    let label = where_.clone();
    // Ends when tokio-postgres closes the connection, or once the `PgConnection` is dropped
    // (the tap fails the socket then: `connection.rs`).
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(host = %label, error = %e, "postgres connection ended");
        }
    });

    let conn = PgConnection {
        client,
        session,
        reset: opts.reset,
        pooler: opts.pooler,
        statement_timeout: opts.statement_timeout.clone(),
        host: where_,
    };
    if let (Pooler::Session, Some(t)) = (opts.pooler, &opts.statement_timeout) {
        // A session pooler keeps this session for the connection's life but refuses the
        // startup `options`: set it once (a simple query; the value is validated).
        conn.client
            .batch_execute(&format!("SET statement_timeout = '{t}'"))
            .await
            .map_err(|e| pg_error(e, Stage::Connect, "setting statement_timeout", None))?;
    }
    if opts.read_write {
        let rows = conn
            .client
            .simple_query("SHOW transaction_read_only")
            .await
            .map_err(|e| pg_error(e, Stage::Connect, "checking target_session_attrs", None))?;
        let read_only = rows.iter().any(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0) == Some("on"),
            _ => false,
        });
        if read_only {
            return Err(BackendError::new(
                BackendErrorKind::Connect,
                format!(
                    "{} is read-only (target_session_attrs=read-write)",
                    conn.host
                ),
            ));
        }
    }
    Ok(conn)
}

async fn tcp_connect(host: &Host) -> Result<TcpStream, BackendError> {
    let where_ = host.to_string();
    let addrs = tokio::net::lookup_host((host.host.as_str(), host.port))
        .await
        .map_err(|e| io_error(e, &where_))?;
    let mut last: Option<io::Error> = None;
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let attempt = async {
            let socket = socket?;
            socket.set_keepalive(true)?;
            let stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, io::Error>(stream)
        };
        match attempt.await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(io_error(
        last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address found")),
        &where_,
    ))
}

fn io_error(e: io::Error, where_: &str) -> BackendError {
    BackendError::new(
        BackendErrorKind::Connect,
        format!("cannot connect to {where_}: {e}"),
    )
    .with_source(e)
}
