//! Training support: metrics logs and crash-safe file writes.

pub mod atomic;
pub mod metrics;
