//! Integration tests of tfesi-ingest: corpus parsing, de-identification, selection, storage and the network front doors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod corpus;
mod db;
mod deid;
#[path = "../common/findings.rs"]
mod findings;
mod fuzz_findings;
mod grpc;
mod outbox;
mod scp;
mod selection;
