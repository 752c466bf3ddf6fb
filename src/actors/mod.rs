//! The actors: thin shells that hold state and turn messages into calls on it.

pub mod pool;
pub mod replica_set;
pub mod supervisor;
