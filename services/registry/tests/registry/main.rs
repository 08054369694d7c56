//! Integration tests of the registry: Postgres (`#[sqlx::test]`), metrics fixtures, gRPC.
#![allow(clippy::unwrap_used)]

mod common;
mod concurrency;
mod events;
mod grpc;
mod labels;
mod metrics_fixtures;
mod records;
