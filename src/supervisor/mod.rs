//! The supervisor: one actor per process (or per actix System) that owns one pool actor
//! per pool key and one replica-set actor per set. `actor.rs` handles the messages in
//! `messages.rs`; `registry.rs` keeps the pools; `events.rs` fans events out;
//! `health.rs` answers `HealthCheck`; `sets.rs` starts, finds and lists replica sets;
//! `inventory.rs` answers what exists without creating anything; `handle.rs` (pools) and
//! `handle_sets.rs` (replica sets, events) offer the same as methods; `embedded.rs` runs
//! a supervisor on a thread of its own for tokio programs;
//! `settings.rs` reads config and named pools from TOML and the environment; `global.rs`
//! is the process-wide supervisor; `upkeep.rs` runs its timers (reaping, the pools'
//! timetable); `shutdown.rs` answers `Shutdown`.

pub(crate) mod actor;
pub(crate) mod config;
pub(crate) mod embedded;
pub(crate) mod events;
mod global;
pub(crate) mod handle;
mod handle_sets;
mod health;
pub(crate) mod inventory;
pub(crate) mod messages;
mod registry;
mod sets;
pub(crate) mod settings;
mod shutdown;
pub(crate) mod stats;
mod upkeep;
