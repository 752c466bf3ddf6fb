//! The pool's connect permits, as many as its connect window is wide (slow start after
//! failures, see `policy/connect_window.rs`): every connect (acquires, refills, probes with
//! nothing idle, credential checks) holds one while it runs.
//!
//! The window narrows while permits are out: those it no longer has room for are retired
//! as they come back (`owed`) instead of being handed to the next connect, so no connect
//! starts while as many as the window allows are running. Outcomes come rarely (once per
//! connect), so the window sits behind a mutex, never held across an `.await`.

use parking_lot::Mutex;
use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};

use crate::policy::connect_window::ConnectWindow;

pub(super) struct ConnectGate {
    permits: Semaphore,
    window: Mutex<Window>,
}

struct Window {
    window: ConnectWindow,
    /// Permits out that are retired when they come back (the window narrowed while they
    /// were out). Nonzero only while none is free.
    owed: usize,
}

/// Room for one connect; given back (or retired) when dropped.
pub(super) struct ConnectPermit<'a> {
    gate: &'a ConnectGate,
    permit: Option<SemaphorePermit<'a>>,
}

impl Drop for ConnectPermit<'_> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut w = self.gate.window.lock();
        if w.owed > 0 {
            w.owed -= 1;
            permit.forget();
        } else {
            drop(permit);
        }
    }
}

impl ConnectGate {
    /// `max_connecting` at once, the whole window open.
    pub(super) fn new(max_connecting: u32) -> Self {
        let window = ConnectWindow::new(max_connecting);
        Self {
            permits: Semaphore::new(window.width() as usize),
            window: Mutex::new(Window { window, owed: 0 }),
        }
    }

    /// Wait for room to connect. Cancel safe (the semaphore's acquire is): dropped while
    /// waiting, nothing is taken.
    pub(super) async fn acquire(&self) -> Result<ConnectPermit<'_>, AcquireError> {
        let permit = self.permits.acquire().await?;
        Ok(ConnectPermit {
            gate: self,
            permit: Some(permit),
        })
    }

    /// Connects allowed at once now.
    pub(super) fn width(&self) -> u32 {
        self.window.lock().window.width()
    }

    /// A connect succeeded: the window widens (settling what is owed first).
    pub(super) fn succeeded(&self) {
        let mut w = self.window.lock();
        let before = w.window.width();
        w.window.succeeded();
        let wider = (w.window.width() - before) as usize;
        let settled = wider.min(w.owed);
        w.owed -= settled;
        self.permits.add_permits(wider - settled);
    }

    /// A connect failed in a way that counts against the endpoint: the window narrows,
    /// free permits first, the rest as they come back.
    pub(super) fn failed(&self) {
        let mut w = self.window.lock();
        let before = w.window.width();
        w.window.failed();
        let narrower = (before - w.window.width()) as usize;
        let retired = self.permits.forget_permits(narrower);
        w.owed += narrower - retired;
    }

    #[cfg(test)]
    fn try_acquire(&self) -> Option<ConnectPermit<'_>> {
        let permit = self.permits.try_acquire().ok()?;
        Some(ConnectPermit {
            gate: self,
            permit: Some(permit),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Take,
        GiveBack(usize),
        Succeeded,
        Failed,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Take),
            3 => any::<usize>().prop_map(Op::GiveBack),
            2 => Just(Op::Succeeded),
            2 => Just(Op::Failed),
        ]
    }

    proptest! {
        /// Under any sequence of connects starting and ending and outcomes narrowing and
        /// widening the window: a connect starts only while fewer than the window's width
        /// run, and the permits (free, out, owed) always add up to the width.
        #[test]
        fn no_connect_starts_past_the_window(
            max in 1u32..20,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let gate = ConnectGate::new(max);
            let mut out = Vec::new();
            for op in ops {
                match op {
                    Op::Take => {
                        let free_before = gate.permits.available_permits();
                        if let Some(p) = gate.try_acquire() {
                            out.push(p);
                            prop_assert!(out.len() as u32 <= gate.width(),
                                "{} running, window {}", out.len(), gate.width());
                        } else {
                            prop_assert_eq!(free_before, 0);
                            prop_assert!(out.len() as u32 >= gate.width());
                        }
                    }
                    Op::GiveBack(i) if !out.is_empty() => {
                        let i = i % out.len();
                        drop(out.swap_remove(i));
                    }
                    Op::Succeeded => gate.succeeded(),
                    Op::Failed => gate.failed(),
                    Op::GiveBack(_) => {}
                }
                let owed = gate.window.lock().owed;
                let free = gate.permits.available_permits();
                prop_assert!(owed == 0 || free == 0, "owed {owed} beside {free} free");
                prop_assert_eq!(free + out.len() - owed, gate.width() as usize);
                prop_assert!(gate.width() >= 1 && gate.width() <= max);
            }
            drop(out);
            prop_assert_eq!(gate.permits.available_permits(), gate.width() as usize);
            prop_assert_eq!(gate.window.lock().owed, 0);
        }
    }
}
