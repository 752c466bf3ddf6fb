//! Configuration: plain data, serde, documented defaults, validation naming the field.

pub mod connection;
pub mod pool;
pub mod replica_set;
pub mod supervisor;
