//! Pure state machines and choices: no I/O, no actix; time and randomness are passed in,
//! so each is tested on its own (and on paused tokio time).

pub(crate) mod backoff;
pub(crate) mod breaker;
pub(crate) mod connect_window;
pub(crate) mod leak;
