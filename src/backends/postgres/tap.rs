//! The socket and the wire tap: [`Tap`] follows the protocol's message framing in both
//! directions and records what it sees in a [`Session`] (see the [backend's module
//! docs](super)).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Sleep;
use tokio_postgres::tls::{ChannelBinding, TlsStream};

use super::session::{Closing, Session, CLOSE_GRACE};

/// A TCP or Unix-domain socket.
pub(super) enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Follows the framing of PostgreSQL protocol messages in one direction: a 1-byte tag
/// and a 4-byte big-endian length counting itself, then the body (skipped, except its first
/// bytes). The first messages of a connection (SSLRequest, StartupMessage) have no tag.
#[derive(Default)]
struct Framer {
    /// Untagged messages still expected.
    untagged: u8,
    header: [u8; 5],
    have: usize,
    in_body: bool,
    tag: u8,
    left: usize,
    capture: [u8; CAPTURE],
    captured: usize,
}

/// How many first bytes of a message body the framer hands on (a ReadyForQuery's status,
/// a BackendKeyData's process id).
const CAPTURE: usize = 8;

enum Frame {
    Start(u8),
    End(u8),
}

impl Framer {
    /// Feed bytes in stream order; `on` sees each message's start and end (with the first
    /// bytes of its body). `Err` on an impossible length.
    fn feed(&mut self, mut data: &[u8], mut on: impl FnMut(Frame, &[u8])) -> Result<(), ()> {
        loop {
            if !self.in_body {
                // The usual case: a whole tagged message at the front of `data` and nothing
                // carried over from the last read, looked at where it lies (no copy).
                if self.have == 0 && self.untagged == 0 {
                    if let Some(&[tag, a, b, c, d]) = data.get(..5) {
                        let len = i32::from_be_bytes([a, b, c, d]);
                        if len < 4 {
                            return Err(());
                        }
                        let end = 5 + (len as usize - 4);
                        if let Some(body) = data.get(5..end) {
                            on(Frame::Start(tag), &[]);
                            on(Frame::End(tag), &body[..body.len().min(CAPTURE)]);
                            data = &data[end..];
                            continue;
                        }
                    }
                }
                if data.is_empty() {
                    return Ok(());
                }
                let need = if self.untagged > 0 { 4 } else { 5 };
                let take = (need - self.have).min(data.len());
                self.header[self.have..self.have + take].copy_from_slice(&data[..take]);
                self.have += take;
                data = &data[take..];
                if self.have < need {
                    return Ok(());
                }
                let (tag, len) = if self.untagged > 0 {
                    self.untagged -= 1;
                    (0, &self.header[..4])
                } else {
                    (self.header[0], &self.header[1..5])
                };
                let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                if len < 4 {
                    return Err(());
                }
                self.tag = tag;
                self.left = len as usize - 4;
                self.have = 0;
                self.captured = 0;
                self.in_body = true;
                on(Frame::Start(tag), &[]);
            }
            if self.left > 0 {
                if data.is_empty() {
                    return Ok(());
                }
                let take = self.left.min(data.len());
                let keep = (self.capture.len() - self.captured).min(take);
                self.capture[self.captured..self.captured + keep].copy_from_slice(&data[..keep]);
                self.captured += keep;
                self.left -= take;
                data = &data[take..];
            }
            if self.left == 0 {
                self.in_body = false;
                on(Frame::End(self.tag), &self.capture[..self.captured]);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LastExecute {
    Simple,
    Extended,
}

/// A stream that watches the PostgreSQL messages passing through it (see the module docs)
/// and updates a [`Session`]. Bytes pass unchanged.
///
/// It also ends the connection task once its [`PgConnection`](super::PgConnection) is
/// dropped ([`Session::closing`]): every poll of the socket fails, at once when requests
/// were left unanswered, else after [`CLOSE_GRACE`] (tokio-postgres closes a connection
/// whose client is gone by itself, but only once every request written is answered, which
/// on a link that no longer delivers is never). The connection task is polled through the
/// socket anyway, so this costs it one load a poll and, when the socket has nothing for it,
/// the registration of its waker with the session, which the drop wakes: no second future
/// to poll beside it.
pub(super) struct Tap<S> {
    inner: S,
    session: Arc<Session>,
    rx: Framer,
    tx: Framer,
    /// The next byte read answers an SSLRequest.
    ssl_answer_pending: bool,
    /// Stop watching: the stream is encrypted from here (a tap above TLS takes over) or the
    /// framing was lost.
    passthrough: bool,
    last_execute: LastExecute,
    /// `Sync`s written since the last `Execute` (ignored by the server in copy-in mode).
    syncs_since_execute: u64,
    /// The [`CLOSE_GRACE`] timer, started at the first poll after a drop with nothing in
    /// flight.
    grace: Option<Pin<Box<Sleep>>>,
}

impl<S> Tap<S> {
    /// On the raw socket: the first message written is an SSLRequest when `ssl_request`,
    /// else the StartupMessage.
    pub(super) fn new(inner: S, session: Arc<Session>, ssl_request: bool) -> Self {
        Tap {
            inner,
            session,
            rx: Framer::default(),
            tx: Framer {
                untagged: 1,
                ..Framer::default()
            },
            ssl_answer_pending: ssl_request,
            passthrough: false,
            last_execute: LastExecute::Simple,
            syncs_since_execute: 0,
            grace: None,
        }
    }

    /// `Err` once the connection task must stop (see [`Tap`]): its connection ends with
    /// the error, which closes the socket.
    #[inline]
    fn check_owner(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.session.closing() {
            Closing::Open => Ok(()),
            how => self.owner_gone(how, cx),
        }
    }

    /// One poll of the socket (`op`), watched for the owner's going: refused once the task
    /// must stop; when the socket has nothing for it, the task waits where only the session
    /// can wake it for a close (see [`Session::wait_here`]). A close that came after this
    /// poll's check is looked at in a poll of its own; once the grace timer runs, it wakes
    /// the task.
    #[inline]
    fn watched<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(&mut Self, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Err(e) = self.check_owner(cx) {
            return Poll::Ready(Err(e));
        }
        let result = op(self, cx);
        if result.is_pending() && self.session.wait_here(cx.waker()) && self.grace.is_none() {
            cx.waker().wake_by_ref();
        }
        result
    }

    #[cold]
    fn owner_gone(&mut self, how: Closing, cx: &mut Context<'_>) -> io::Result<()> {
        if how == Closing::Grace {
            let grace = self
                .grace
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_GRACE)));
            return match grace.as_mut().poll(cx) {
                Poll::Pending => Ok(()),
                Poll::Ready(()) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("not closed within {CLOSE_GRACE:?} of being dropped; socket closed"),
                )),
            };
        }
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "dropped with requests unanswered; socket closed",
        ))
    }

    /// Above TLS: the first message written is the StartupMessage.
    pub(super) fn over_tls(inner: S, session: Arc<Session>) -> Self {
        Self::new(inner, session, false)
    }

    fn lost_framing(&mut self) {
        self.passthrough = true;
        self.session.desync.store(true, Ordering::Release);
    }

    fn observe_read(&mut self, mut data: &[u8]) {
        if self.passthrough || data.is_empty() {
            return;
        }
        if self.ssl_answer_pending {
            self.ssl_answer_pending = false;
            if data[0] == b'S' {
                // TLS from here: the tap over the TLS stream watches the plaintext.
                self.passthrough = true;
                return;
            }
            // 'N': the StartupMessage follows in plaintext.
            self.tx.untagged = 1;
            data = &data[1..];
        }
        let session = &self.session;
        let ok = self.rx.feed(data, |frame, body| match frame {
            Frame::End(b'Z') if !body.is_empty() => {
                session.status.store(body[0], Ordering::Release);
                session.ready.fetch_add(1, Ordering::AcqRel);
            }
            Frame::End(b'K') if body.len() >= 4 => {
                let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                session.pid.store(pid, Ordering::Relaxed);
            }
            _ => {}
        });
        if ok.is_err() {
            self.lost_framing();
        }
    }

    fn observe_write(&mut self, data: &[u8]) {
        if self.passthrough || data.is_empty() {
            return;
        }
        let session = &self.session;
        let last_execute = &mut self.last_execute;
        let syncs = &mut self.syncs_since_execute;
        let ok = self.tx.feed(data, |frame, _| match frame {
            Frame::Start(b'Q') => {
                session.sent.fetch_add(1, Ordering::AcqRel);
                *last_execute = LastExecute::Simple;
            }
            Frame::Start(b'E') => {
                *last_execute = LastExecute::Extended;
                *syncs = 0;
            }
            Frame::Start(b'S') => {
                session.sent.fetch_add(1, Ordering::AcqRel);
                if *last_execute == LastExecute::Extended {
                    *syncs += 1;
                }
            }
            // CopyDone / CopyFail: a Sync written after the Execute that started an
            // extended-protocol COPY FROM STDIN was ignored by the server.
            Frame::Start(b'c' | b'f') => {
                if *last_execute == LastExecute::Extended && *syncs > 0 {
                    session.sent.fetch_sub(*syncs, Ordering::AcqRel);
                }
                *syncs = 0;
            }
            _ => {}
        });
        if ok.is_err() {
            self.lost_framing();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().watched(cx, |this, cx| {
            let before = buf.filled().len();
            let result = Pin::new(&mut this.inner).poll_read(cx, buf);
            if let Poll::Ready(Ok(())) = result {
                this.observe_read(&buf.filled()[before..]);
            }
            result
        })
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().watched(cx, |this, cx| {
            let result = Pin::new(&mut this.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = result {
                this.observe_write(&buf[..n]);
            }
            result
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .watched(cx, |this, cx| Pin::new(&mut this.inner).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .watched(cx, |this, cx| Pin::new(&mut this.inner).poll_shutdown(cx))
    }
}

impl<S: TlsStream + Unpin> TlsStream for Tap<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

#[cfg(test)]
#[path = "tap_tests.rs"]
mod tests;
