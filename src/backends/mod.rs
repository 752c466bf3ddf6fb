//! Backends: the drivers poolwarden pools. The simulated backend is always built.

pub mod sim;
