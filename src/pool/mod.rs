//! One pool's shared state, its checked-out guard and its handle.

pub(crate) mod core;
pub mod guard;
pub mod handle;
mod health;
pub(crate) mod home;
mod lifecycle;
