//! One pool: its actor (lifecycle, supervision), its handle (acquire in the caller's
//! task), the guard of a checked-out connection, and the shared state they work on, cut so
//! that each file owns its fields (see `shared.rs` for the map).

pub(crate) mod acquire;
pub(crate) mod actor;
mod budget;
mod capacity;
mod checkin;
mod checkout;
pub(crate) mod config;
mod conn;
mod connect;
mod connect_gate;
mod controls;
mod counters;
pub(crate) mod credential;
pub(crate) mod dedicated;
pub(crate) mod factory;
mod gauge;
pub(crate) mod guard;
pub(crate) mod handle;
pub(crate) mod health;
pub(crate) mod home;
mod hook_run;
pub(crate) mod hooks;
mod hot;
mod idle;
mod incarnation;
mod leaks;
mod lifecycle;
pub(crate) mod messages;
mod pause;
mod probe;
mod queue;
mod rotation;
pub(crate) mod shared;
mod slots;
pub(crate) mod stats;
mod tending;
mod wake;
