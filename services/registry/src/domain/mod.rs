//! Domain logic without I/O or gRPC: validation, labels, metrics, splits and snapshots.

pub mod label;
pub mod metrics;
pub mod performance;
pub mod records;
pub mod snapshot;
pub mod split;
pub mod types;
pub mod validation;
