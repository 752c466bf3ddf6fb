//! The pool actor's incarnations: the generation (bumped at each restart, so connections
//! of a crashed incarnation are never reused), the hook that reports a backend panic to
//! the running actor, and the restart log behind OTP-style restart intensity.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::error::Phase;

/// Called when backend code panics, with the phase and the panic message.
pub(crate) type CrashHook = Box<dyn Fn(Phase, &str) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Incarnation {
    generation: AtomicU64,
    crash_hook: Mutex<Option<CrashHook>>,
    restart_log: Mutex<VecDeque<Instant>>,
}

impl Incarnation {
    #[inline]
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Start the next incarnation; answers its generation.
    pub(super) fn next(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) fn set_crash_hook(&self, hook: Option<CrashHook>) {
        *self.crash_hook.lock() = hook;
    }

    /// Tell the running actor that backend code panicked.
    pub(super) fn crashed(&self, phase: Phase, message: &str) {
        if let Some(hook) = self.crash_hook.lock().as_ref() {
            hook(phase, message);
        }
    }

    /// Log a restart; answers whether more than `max` fell within `window`.
    pub(super) fn restart_too_often(&self, max: u32, window: Duration) -> bool {
        let now = Instant::now();
        let mut log = self.restart_log.lock();
        log.push_back(now);
        while log
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            log.pop_front();
        }
        log.len() > max as usize
    }

    pub(super) fn forget_restarts(&self) {
        self.restart_log.lock().clear();
    }
}
