//! Backends: the drivers poolwarden pools. The simulated backend is always built.

pub mod sim;

#[cfg(any(feature = "bb8", feature = "mobc"))]
mod adapter;
#[cfg(feature = "bb8")]
pub mod bb8;
#[cfg(feature = "mobc")]
pub mod mobc;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(
    feature = "bb8",
    feature = "mobc",
    feature = "mysql",
    feature = "postgres",
    feature = "redis"
))]
mod support;
