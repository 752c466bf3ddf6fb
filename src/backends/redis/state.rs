//! The connection state the pool must know about (`MULTI`, `WATCH`, `SELECT`, commands
//! that change the connection for good, a command in flight), tracked as commands go out.

use ::redis::{Cmd, RedisError};

/// Connection state the pool must know about, updated as commands go out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct State {
    /// A command or pipeline is being sent or awaited (left set if its future was dropped).
    pub(super) in_flight: bool,
    /// The connection must not be reused (see
    /// [`RedisConnection::is_broken`](super::RedisConnection::is_broken)).
    pub(super) poisoned: bool,
    /// A `MULTI` may be open.
    pub(super) multi: bool,
    /// A `WATCH` may be active.
    pub(super) watching: bool,
    /// A `SELECT` was sent: the database may differ from the configured one.
    pub(super) db_changed: bool,
}

/// Sets `in_flight` for as long as it lives; dropping it without [`done`](Self::done)
/// (the command future was dropped) leaves the connection marked, for good.
pub(super) struct InFlight<'a>(&'a mut State);

impl<'a> InFlight<'a> {
    pub(super) fn start(state: &'a mut State) -> Self {
        // Commands take `&mut self`, so none can be running: a mark left set means an
        // earlier command future was dropped mid-flight. Keep that for good.
        if state.in_flight {
            state.poisoned = true;
        }
        state.in_flight = true;
        Self(state)
    }

    pub(super) fn done(self) -> &'a mut State {
        let Self(state) = self;
        // `Self` has no Drop impl: moving the reference out ends the guard.
        state.in_flight = false;
        state
    }
}

fn name_is(arg: Option<&[u8]>, name: &str) -> bool {
    arg.is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
}

impl State {
    /// Account for `cmd` having been sent; `answered` tells whether the server answered
    /// without error (for the commands that end a transaction or a watch).
    pub(super) fn track(&mut self, cmd: &Cmd, answered: bool) {
        let mut args = cmd.args_iter().map(|a| match a {
            ::redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        });
        let Some(Some(name)) = args.next() else {
            return;
        };
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("MULTI") {
            self.multi = true;
        } else if is("EXEC") || is("DISCARD") {
            if answered {
                self.multi = false;
                self.watching = false;
            }
        } else if is("WATCH") {
            if !self.multi {
                self.watching = true;
            }
        } else if is("UNWATCH") {
            if answered && !self.multi {
                self.watching = false;
            }
        } else if is("SELECT") {
            self.db_changed = true;
        } else if is("SUBSCRIBE")
            || is("PSUBSCRIBE")
            || is("SSUBSCRIBE")
            || is("MONITOR")
            || is("RESET")
            || is("HELLO")
            || is("AUTH")
            || is("QUIT")
            || is("SYNC")
            || is("PSYNC")
        {
            self.poisoned = true;
        } else if is("CLIENT") {
            let sub = args.next().flatten();
            if name_is(sub, "REPLY") || name_is(sub, "TRACKING") {
                self.poisoned = true;
            }
        }
    }

    /// After a request completed with `result`.
    pub(super) fn finish<T>(&mut self, result: &Result<T, RedisError>) {
        if let Err(e) = result {
            // The connection is gone, or the command is still running on the server
            // (response timeout): either way it cannot be reused.
            if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                self.poisoned = true;
            }
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
