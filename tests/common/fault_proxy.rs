//! A TCP fault proxy on loopback: put it between a pool and a server to add latency, reset
//! connections, swallow traffic or cut a link after a number of bytes.
//!
//! ```ignore
//! let proxy = FaultProxy::start(([127, 0, 0, 1], pg.port()).into());
//! let mut cfg = pg.config_for("app");
//! cfg.hosts[0].port = proxy.port();          // the pool talks to the proxy
//! proxy.set_blackhole(true);                 // sockets stay open, nothing gets through
//! proxy.set_blackhole(false);
//! proxy.reset_all();                         // RST every open connection, once
//! proxy.set_reset(true);                     // …and every new one while on
//! proxy.set_byte_limit(Some(4096));          // new connections stall after 4 KiB
//! proxy.set_latency(Duration::from_millis(50));
//! ```
//!
//! The proxy runs on a thread of its own (a current-thread tokio runtime), so it keeps
//! forwarding whatever the test's runtime is doing, and stops when dropped: its listener
//! and every connection are closed.
//!
//! Switches (each takes effect at once):
//!
//! | switch | open connections | new connections |
//! |---|---|---|
//! | [`set_latency`](FaultProxy::set_latency) | each chunk waits this long before it is forwarded | same |
//! | [`set_blackhole`](FaultProxy::set_blackhole) | bytes are read and dropped, both ways | accepted and held, no upstream connection |
//! | [`reset_all`](FaultProxy::reset_all) | closed with a TCP RST (both sides) | — |
//! | [`set_reset`](FaultProxy::set_reset) | closed with a RST | accepted, then reset at once |
//! | [`set_byte_limit`](FaultProxy::set_byte_limit) | — | after this many bytes (both ways together) nothing more is forwarded; the sockets stay open: a half-open link |
//!
//! Closes always propagate: when either side closes, the proxy closes the other, even for a
//! blackholed or stalled connection, so a server-side count of backends follows what the
//! client holds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Figures of a [`FaultProxy`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub accepted: u64,
    /// Client connections open now.
    pub open: usize,
    /// Connections closed with a RST.
    pub resets: u64,
    /// Connections that reached the byte limit.
    pub stalled: u64,
    /// Bytes forwarded (both ways), counted as each chunk is written on.
    pub forwarded: u64,
}

#[derive(Default)]
struct State {
    latency_us: AtomicU64,
    blackhole: AtomicBool,
    reset: AtomicBool,
    /// 0: no limit.
    byte_limit: AtomicU64,
    accepted: AtomicU64,
    open: AtomicUsize,
    resets: AtomicU64,
    stalled: AtomicU64,
    forwarded: AtomicU64,
}

/// The proxy. See the module docs.
pub struct FaultProxy {
    port: u16,
    target: SocketAddr,
    state: Arc<State>,
    /// Bumped by `reset_all`: connections accepted under an older value are reset.
    kick: watch::Sender<u64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listen on a free port of 127.0.0.1 and forward to `target`.
    pub fn start(target: SocketAddr) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(State::default());
        let (kick, _) = watch::channel(0u64);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let state = Arc::clone(&state);
            let kick = kick.clone();
            std::thread::Builder::new()
                .name(format!("fault-proxy-{port}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("proxy runtime");
                    rt.block_on(async move {
                        let listener = TcpListener::from_std(listener).expect("tokio listener");
                        tokio::select! {
                            _ = stopped => {}
                            () = accept_loop(listener, target, state, kick) => {}
                        }
                    });
                    // Dropping the runtime drops every connection task and its sockets.
                })
                .expect("spawn the proxy thread")
        };
        FaultProxy {
            port,
            target,
            state,
            kick,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The port to connect to (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where traffic goes.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Delay every forwarded chunk by `latency` (zero: none).
    pub fn set_latency(&self, latency: Duration) {
        self.state
            .latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Swallow everything (on) or forward again (off). Connections accepted while on have
    /// no upstream and stay dead.
    pub fn set_blackhole(&self, on: bool) {
        self.state.blackhole.store(on, Ordering::Relaxed);
    }

    /// Reset every open connection now (with a RST to both sides).
    pub fn reset_all(&self) {
        self.kick.send_modify(|k| *k += 1);
    }

    /// While on, reset every open connection and every new one as soon as it is accepted.
    pub fn set_reset(&self, on: bool) {
        self.state.reset.store(on, Ordering::Relaxed);
        if on {
            self.reset_all();
        }
    }

    /// For connections accepted from now on: stop forwarding after `limit` bytes (both
    /// directions together), keeping the sockets open. `None`: no limit.
    pub fn set_byte_limit(&self, limit: Option<u64>) {
        self.state
            .byte_limit
            .store(limit.unwrap_or(0), Ordering::Relaxed);
    }

    /// Back to a plain forwarder for new traffic (no latency, blackhole, reset or limit).
    pub fn heal(&self) {
        self.set_latency(Duration::ZERO);
        self.set_blackhole(false);
        self.set_reset(false);
        self.set_byte_limit(None);
    }

    /// Figures so far.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.state;
        ProxyStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            open: s.open.load(Ordering::Relaxed),
            resets: s.resets.load(Ordering::Relaxed),
            stalled: s.stalled.load(Ordering::Relaxed),
            forwarded: s.forwarded.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    state: Arc<State>,
    kick: watch::Sender<u64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        state.accepted.fetch_add(1, Ordering::Relaxed);
        // Counted here, not in the task: a test reading `open` right after its client
        // connected must see it.
        state.open.fetch_add(1, Ordering::Relaxed);
        let open = OpenCount(Arc::clone(&state));
        let (state, kick) = (Arc::clone(&state), kick.subscribe());
        tokio::spawn(serve(client, target, state, kick, open));
    }
}

struct OpenCount(Arc<State>);

impl Drop for OpenCount {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn reset(state: &State, sockets: &[&TcpStream]) {
    for s in sockets {
        let _ = s.set_zero_linger();
    }
    state.resets.fetch_add(1, Ordering::Relaxed);
}

/// Resolves when `reset_all` is called after the connection was accepted.
async fn kicked(kick: &mut watch::Receiver<u64>) {
    if kick.changed().await.is_err() {
        // The proxy is going away; its runtime drops this task.
        std::future::pending::<()>().await;
    }
}

async fn serve(
    client: TcpStream,
    target: SocketAddr,
    state: Arc<State>,
    mut kick: watch::Receiver<u64>,
    _open: OpenCount,
) {
    let _ = client.set_nodelay(true);
    if state.reset.load(Ordering::Relaxed) {
        reset(&state, &[&client]);
        return;
    }
    if state.blackhole.load(Ordering::Relaxed) {
        // Hold the socket, read and drop whatever comes, until the client goes away.
        let mut client = client;
        let mut buf = [0u8; 4096];
        loop {
            tokio::select! {
                r = client.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                () = kicked(&mut kick) => {
                    reset(&state, &[&client]);
                    return;
                }
            }
        }
    }
    let upstream = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(_) => {
            reset(&state, &[&client]);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let limit = state.byte_limit.load(Ordering::Relaxed);
    let used = AtomicU64::new(0);
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let was_reset = {
        let link = Link {
            state: &state,
            limit,
            used: &used,
        };
        tokio::select! {
            () = link.pump(&mut cr, &mut uw) => false,
            () = link.pump(&mut ur, &mut cw) => false,
            () = kicked(&mut kick) => true,
        }
    };
    if was_reset {
        reset(&state, &[cr.as_ref(), ur.as_ref()]);
        // Dropping a write half shuts it down (a FIN) before the socket closes; a reset
        // must be a bare RST, so the write halves go without a shutdown and the sockets
        // close (with zero linger: RST) when the read halves are dropped.
        cw.forget();
        uw.forget();
    }
    // Dropping the halves closes both sockets: a close on one side reaches the other.
}

/// One connection's shared budget.
#[derive(Clone, Copy)]
struct Link<'a> {
    state: &'a State,
    /// 0: no limit.
    limit: u64,
    used: &'a AtomicU64,
}

impl Link<'_> {
    /// Forward `from` → `to` until either fails or `from` ends.
    async fn pump(self, from: &mut OwnedReadHalf, to: &mut OwnedWriteHalf) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if self.state.blackhole.load(Ordering::Relaxed) {
                continue;
            }
            let allowed = if self.limit == 0 {
                n
            } else {
                let before = self.used.fetch_add(n as u64, Ordering::Relaxed);
                let left = self.limit.saturating_sub(before) as usize;
                if before <= self.limit && before + n as u64 > self.limit {
                    self.state.stalled.fetch_add(1, Ordering::Relaxed);
                }
                left.min(n)
            };
            if allowed == 0 {
                continue;
            }
            let latency = self.state.latency_us.load(Ordering::Relaxed);
            if latency > 0 {
                tokio::time::sleep(Duration::from_micros(latency)).await;
            }
            // Counted before the write: once the receiver has the bytes, `forwarded`
            // includes them (a test reads it right after a round trip).
            self.state
                .forwarded
                .fetch_add(allowed as u64, Ordering::Relaxed);
            if to.write_all(&buf[..allowed]).await.is_err() {
                return;
            }
        }
    }
}
