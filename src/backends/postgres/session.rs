//! What the wire tap learns about one connection ([`Session`]), and the transaction status
//! read from it.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::task::Waker;
use std::time::Duration;

use futures::task::AtomicWaker;

/// The server's transaction status, from the last ReadyForQuery message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block (`BEGIN` was run).
    InTransaction,
    /// In a failed transaction block: only `ROLLBACK` is accepted.
    Failed,
    /// Not known (no ReadyForQuery yet).
    Unknown,
}

const STATUS_IDLE: u8 = b'I';
const STATUS_IN_TRANSACTION: u8 = b'T';
const STATUS_FAILED: u8 = b'E';

/// What the tap learned about one connection. Written only by the connection task (which
/// does all reads and writes), read by the pool.
#[derive(Debug)]
pub(super) struct Session {
    /// Requests written that the server answers with exactly one ReadyForQuery (`Query`,
    /// `Sync`), plus one for the startup.
    pub(super) sent: AtomicU64,
    /// ReadyForQuery messages read.
    pub(super) ready: AtomicU64,
    /// Added to `sent - ready` once a barrier proved nothing is in flight.
    correction: AtomicI64,
    /// Status byte of the last ReadyForQuery; 0 before the first.
    pub(super) status: AtomicU8,
    /// Backend process id, from BackendKeyData.
    pub(super) pid: AtomicI32,
    /// The tap lost the message framing: the connection must not be reused.
    pub(super) desync: AtomicBool,
    /// Set when the [`PgConnection`](super::PgConnection) is dropped: how long its
    /// connection task may still run ([`Closing`]).
    closing: AtomicU8,
    /// The connection task, as of its last wait on the socket: woken by
    /// [`close`](Self::close). (The client's drop wakes it too, but only when it last waited
    /// on the client's requests: not while a write of 8 KiB or more waits for a socket that
    /// takes nothing more.)
    task: AtomicWaker,
}

/// How long the connection task may outlive a dropped
/// [`PgConnection`](super::PgConnection) when nothing is in flight: enough to write
/// `Terminate` and close the socket cleanly.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Whether the connection's owner is gone, and how long its task may still run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    /// In use (the usual case).
    Open,
    /// Dropped with nothing in flight: [`CLOSE_GRACE`] to close cleanly.
    Grace,
    /// Dropped with requests unanswered, or the framing lost: stop at once.
    Now,
}

impl Session {
    pub(super) fn new() -> Self {
        Session {
            sent: AtomicU64::new(1),
            ready: AtomicU64::new(0),
            correction: AtomicI64::new(0),
            status: AtomicU8::new(0),
            pid: AtomicI32::new(0),
            desync: AtomicBool::new(false),
            closing: AtomicU8::new(Closing::Open as u8),
            task: AtomicWaker::new(),
        }
    }

    /// The owner is gone: with requests unanswered (`abandoned`) the task stops at its
    /// next poll, else it gets [`CLOSE_GRACE`]. Wakes the task for that poll.
    pub(super) fn close(&self, abandoned: bool) {
        let how = if abandoned {
            Closing::Now
        } else {
            Closing::Grace
        };
        self.closing.store(how as u8, Ordering::Release);
        self.task.wake();
    }

    /// The connection task is about to wait on its socket (`waker`): a later
    /// [`close`](Self::close) wakes it. Answers whether the owner is gone already (a close
    /// between the last check and this registration: the caller polls again).
    pub(super) fn wait_here(&self, waker: &Waker) -> bool {
        self.task.register(waker);
        self.closing() != Closing::Open
    }

    /// Whether the owner is gone (one load: read on every poll of the connection's socket).
    #[inline]
    pub(super) fn closing(&self) -> Closing {
        match self.closing.load(Ordering::Acquire) {
            0 => Closing::Open,
            1 => Closing::Grace,
            _ => Closing::Now,
        }
    }

    /// Requests written and not answered with a ReadyForQuery yet. Reads `ready` first, so
    /// a race with the connection task can only over-count (which costs a barrier).
    pub(super) fn in_flight(&self) -> i64 {
        let ready = self.ready.load(Ordering::Acquire) as i64;
        let sent = self.sent.load(Ordering::Acquire) as i64;
        sent + self.correction.load(Ordering::Acquire) - ready
    }

    pub(super) fn status(&self) -> TransactionStatus {
        match self.status.load(Ordering::Acquire) {
            STATUS_IDLE => TransactionStatus::Idle,
            STATUS_IN_TRANSACTION => TransactionStatus::InTransaction,
            STATUS_FAILED => TransactionStatus::Failed,
            _ => TransactionStatus::Unknown,
        }
    }

    /// Idle, nothing in flight: nothing to reset.
    pub(super) fn is_clean(&self) -> bool {
        self.in_flight() == 0 && self.status.load(Ordering::Acquire) == STATUS_IDLE
    }

    /// After a barrier completed: nothing written before it is still in flight.
    pub(super) fn settle(&self) {
        let ready = self.ready.load(Ordering::Acquire) as i64;
        let sent = self.sent.load(Ordering::Acquire) as i64;
        self.correction.store(ready - sent, Ordering::Release);
    }
}
