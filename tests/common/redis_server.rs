//! A throwaway Redis server, and a tiny synchronous RESP client for admin commands (so the
//! harness needs no Redis driver).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use poolwarden::{ConnectionConfig, Secret};

use super::process::{on_free_port, Process, ProcessSpec};
use super::tls::TlsFiles;
use super::{find_binary, skip};

/// `redis-server` as the harness runs it.
const REDIS_SERVER: ProcessSpec = ProcessSpec {
    name: "redis-server",
    pidfile: "redis.pid",
    log: "redis.log",
    log_lines: 20,
    within: Duration::from_secs(20),
};

/// Settings of a [`RedisServer`] beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// `--requirepass` (the `default` user's password).
    pub password: Option<String>,
    /// Extra `redis-server` arguments, e.g. `["--maxclients", "10"]`.
    pub args: Vec<String>,
    /// TLS only: the port speaks TLS (`--tls-port`, `--port 0`) with these server
    /// certificate, key and CA files; client certificates are optional (`--tls-auth-clients
    /// optional`, override with `args`). Admin connections then go through a Unix socket.
    pub tls: Option<TlsFiles>,
}

/// A Redis server on `127.0.0.1:<free port>`, without persistence. Killed and deleted on
/// drop.
pub struct RedisServer {
    bin: PathBuf,
    opts: RedisOptions,
    process: Process,
}

impl RedisServer {
    /// Start a fresh server, or `None` (after `SKIP: …`) when Redis is not installed.
    pub fn start() -> Option<RedisServer> {
        Self::start_with(RedisOptions::default())
    }

    /// The server shared by every test of this binary, started on first use.
    pub fn shared() -> Option<&'static RedisServer> {
        static SHARED: OnceLock<Option<RedisServer>> = OnceLock::new();
        SHARED.get_or_init(RedisServer::start).as_ref()
    }

    /// Start a fresh server with `opts`.
    pub fn start_with(opts: RedisOptions) -> Option<RedisServer> {
        let Some(bin) = find_binary(&["redis-server"], &[PathBuf::from("/usr/bin")]) else {
            return skip("Redis (redis-server)", "redis-server");
        };
        let mut server = RedisServer {
            bin,
            opts,
            process: Process::new("pw-redis-", REDIS_SERVER),
        };
        on_free_port(|port| {
            server.process.set_port(port);
            server.spawn()
        })
        .unwrap_or_else(|e| panic!("cannot start Redis: {e}"));
        Some(server)
    }

    fn spawn(&self) -> Result<(), String> {
        let p = &self.process;
        let mut cmd = Command::new(&self.bin);
        match &self.opts.tls {
            None => cmd.arg("--port").arg(p.port().to_string()),
            Some(tls) => cmd
                .args(["--port", "0", "--tls-port"])
                .arg(p.port().to_string())
                .arg("--tls-cert-file")
                .arg(&tls.cert_file)
                .arg("--tls-key-file")
                .arg(&tls.key_file)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca_file)
                .args(["--tls-auth-clients", "optional", "--unixsocket"])
                .arg(self.unix_socket())
                .args(["--unixsocketperm", "700"]),
        };
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(p.dir())
            .arg("--pidfile")
            .arg(p.pidfile())
            .arg("--logfile")
            .arg(p.log_path());
        if let Some(pw) = &self.opts.password {
            cmd.arg("--requirepass").arg(pw);
        }
        cmd.args(&self.opts.args);
        p.spawn(&mut cmd, || match self.admin() {
            Ok(mut c) => match c.command(&["PING"]) {
                Ok(_) => Some(Ok(())),
                Err(e) if e.contains("LOADING") => None,
                Err(e) => Some(Err(e)),
            },
            Err(_) => None,
        })
    }

    /// Kill the server (SIGKILL: every connection drops at once). No-op when stopped.
    pub fn stop(&self) {
        self.process.kill();
    }

    /// Start again on the same port after [`stop`](Self::stop); returns when PING answers.
    pub fn start_again(&self) {
        self.process.start_again("Redis", || self.spawn());
    }

    /// Kill and start again on the same port (the data set is lost: no persistence).
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The password, if the server requires one.
    pub fn password(&self) -> Option<&str> {
        self.opts.password.as_deref()
    }

    /// The server's directory (log, pid file).
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// `redis://[:password@]127.0.0.1:<port>` (`rediss://` when the port speaks TLS).
    pub fn url(&self) -> String {
        let scheme = match self.opts.tls {
            None => "redis",
            Some(_) => "rediss",
        };
        match &self.opts.password {
            Some(pw) => format!("{scheme}://:{pw}@127.0.0.1:{}", self.port()),
            None => format!("{scheme}://127.0.0.1:{}", self.port()),
        }
    }

    /// A connection config for this server (password set when required).
    pub fn config(&self) -> ConnectionConfig {
        let mut c = ConnectionConfig::new("redis", "127.0.0.1", self.port());
        c.password = self.opts.password.clone().map(Secret::new);
        c
    }

    fn unix_socket(&self) -> PathBuf {
        self.process.dir().join("redis.sock")
    }

    /// A synchronous admin connection (authenticated when the server has a password);
    /// through the Unix socket when the TCP port speaks TLS.
    pub fn admin(&self) -> Result<RespConn, String> {
        let mut c = match self.opts.tls {
            None => RespConn::connect(self.port())?,
            Some(_) => RespConn::connect_unix(&self.unix_socket())?,
        };
        if let Some(pw) = &self.opts.password {
            c.command(&["AUTH", pw])?;
        }
        Ok(c)
    }

    /// Run one command on a fresh admin connection.
    pub fn command(&self, args: &[&str]) -> Result<Resp, String> {
        self.admin()?.command(args)
    }

    /// Lines of `CLIENT LIST`, without the admin connection that asked.
    pub fn client_list(&self) -> Vec<String> {
        let mut c = self.admin().expect("redis admin connection");
        let own = match c.command(&["CLIENT", "ID"]).expect("CLIENT ID") {
            Resp::Int(id) => id,
            other => panic!("CLIENT ID answered {other:?}"),
        };
        let list = c.command(&["CLIENT", "LIST"]).expect("CLIENT LIST");
        list.text()
            .lines()
            .filter(|l| !l.starts_with(&format!("id={own} ")))
            .map(str::to_string)
            .collect()
    }

    /// Connected clients, excluding the admin connection that counts them.
    pub fn client_count(&self) -> usize {
        self.client_list().len()
    }

    /// Connected clients whose `CLIENT SETNAME` is `name`.
    pub fn client_count_named(&self, name: &str) -> usize {
        let needle = format!(" name={name} ");
        self.client_list()
            .iter()
            .filter(|l| l.contains(&needle))
            .count()
    }
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    /// `+OK`
    Simple(String),
    /// `:42`
    Int(i64),
    /// `$…` (None for the null bulk string)
    Bulk(Option<Vec<u8>>),
    /// `*…` (None for the null array)
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The reply as text (bulk or simple string; empty otherwise).
    pub fn text(&self) -> String {
        match self {
            Resp::Simple(s) => s.clone(),
            Resp::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Resp::Int(i) => i.to_string(),
            _ => String::new(),
        }
    }
}

/// A socket the admin client talks through.
trait Socket: Read + Write + Send {}
impl<T: Read + Write + Send> Socket for T {}

/// A blocking RESP2 connection for admin commands. Error replies become `Err`.
pub struct RespConn {
    reader: BufReader<Box<dyn Socket>>,
}

impl RespConn {
    /// Connect to `127.0.0.1:port`.
    pub fn connect(port: u16) -> Result<RespConn, String> {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        Ok(RespConn {
            reader: BufReader::new(Box::new(s)),
        })
    }

    /// Connect to the Unix socket at `path`.
    pub fn connect_unix(path: &Path) -> Result<RespConn, String> {
        let s = std::os::unix::net::UnixStream::connect(path).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        Ok(RespConn {
            reader: BufReader::new(Box::new(s)),
        })
    }

    /// Send one command and read its reply.
    pub fn command(&mut self, args: &[&str]) -> Result<Resp, String> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.reader
            .get_mut()
            .write_all(&out)
            .map_err(|e| e.to_string())?;
        self.read_reply()
    }

    fn read_line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line.is_empty() {
            return Err("connection closed".into());
        }
        Ok(line.trim_end_matches("\r\n").to_string())
    }

    fn read_reply(&mut self) -> Result<Resp, String> {
        let line = self.read_line()?;
        let (kind, rest) = line.split_at(1);
        let num = || {
            rest.parse::<i64>()
                .map_err(|e| format!("bad reply {line:?}: {e}"))
        };
        match kind {
            "+" => Ok(Resp::Simple(rest.to_string())),
            "-" => Err(rest.to_string()),
            ":" => Ok(Resp::Int(num()?)),
            "$" => {
                let n = num()?;
                if n < 0 {
                    return Ok(Resp::Bulk(None));
                }
                let mut buf = vec![0; n as usize + 2];
                self.reader
                    .read_exact(&mut buf)
                    .map_err(|e| e.to_string())?;
                buf.truncate(n as usize);
                Ok(Resp::Bulk(Some(buf)))
            }
            "*" => {
                let n = num()?;
                if n < 0 {
                    return Ok(Resp::Array(None));
                }
                let items = (0..n)
                    .map(|_| self.read_reply())
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Resp::Array(Some(items)))
            }
            _ => Err(format!("unexpected reply {line:?}")),
        }
    }
}
