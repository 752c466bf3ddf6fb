//! The supervisor: one actor per process (or per actix System) that owns one pool actor
//! per pool key and one replica-set actor per set. `actor.rs` handles the messages in
//! `messages.rs`; `registry.rs` keeps the pools; `events.rs` fans events out; `handle.rs`
//! offers the same as methods, and a supervisor on a thread of its own for tokio programs.

pub(crate) mod actor;
pub(crate) mod config;
pub(crate) mod events;
pub(crate) mod handle;
pub(crate) mod messages;
mod registry;
pub(crate) mod stats;
