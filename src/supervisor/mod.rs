//! The supervisor: one actor per process (or per actix System) that owns one pool actor
//! per pool key and one replica-set actor per set. `actor.rs` handles the messages in
//! `messages.rs`; `registry.rs` keeps the pools; `events.rs` fans events out;
//! `inventory.rs` answers what exists without creating anything; `handle.rs` offers the
//! same as methods, and a supervisor on a thread of its own for tokio programs;
//! `settings.rs` reads config and named pools from TOML and the environment; `global.rs`
//! is the process-wide supervisor.

pub(crate) mod actor;
pub(crate) mod config;
pub(crate) mod events;
mod global;
pub(crate) mod handle;
pub(crate) mod inventory;
pub(crate) mod messages;
mod registry;
pub(crate) mod settings;
pub(crate) mod stats;
