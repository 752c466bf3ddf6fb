//! TLS against real servers (placeholder, filled in below).
