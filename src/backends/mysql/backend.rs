//! `impl Backend for MysqlBackend`: connect (host by host), ping, reset.

use ::mysql_async::prelude::Queryable;
use ::mysql_async::Conn;

use super::connection::MysqlConnection;
use super::errors::{config_error, connect_error};
use super::options::{ResetMode, Settings};
use super::MysqlBackend;
use crate::backends::Backend;
use crate::connection::ConnectionConfig;
use crate::error::BackendError;

impl Backend for MysqlBackend {
    type Connection = MysqlConnection;

    async fn connect(&self, cfg: &ConnectionConfig) -> Result<MysqlConnection, BackendError> {
        let settings = Settings::from_config(cfg)?;
        let mut last = None;
        for host in &cfg.hosts {
            match Conn::new(settings.opts(cfg, host)).await {
                Ok(conn) => {
                    return Ok(MysqlConnection {
                        conn,
                        reset: settings.reset,
                        touched: false,
                        broken: false,
                    })
                }
                Err(e) => {
                    let err = connect_error(e, host, cfg.password.as_ref());
                    if !err.is_retryable() {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| config_error("connection.hosts", "is empty")))
    }

    async fn probe(&self, conn: &mut MysqlConnection) -> Result<(), BackendError> {
        let result = conn.conn.ping().await;
        conn.check("ping", result)
    }

    fn needs_reset(&self, conn: &MysqlConnection) -> bool {
        conn.needs_reset()
    }

    async fn reset(&self, conn: &mut MysqlConnection) -> Result<(), BackendError> {
        if conn.reset == ResetMode::Connection {
            let result = conn.conn.reset().await;
            if conn.check("reset", result)? {
                conn.touched = false;
                return Ok(());
            }
        }
        let result = conn.conn.query_drop("ROLLBACK").await;
        conn.check("rollback", result)?;
        conn.touched = false;
        Ok(())
    }

    fn is_broken(&self, conn: &mut MysqlConnection) -> bool {
        conn.broken
    }
}
