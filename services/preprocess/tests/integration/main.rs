//! Integration tests of tfesi-preprocess: the DICOM corpus, geometry, the Python reference, and the pipeline worker with the real downstream services.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation, clippy::cast_sign_loss)]

mod cache;
mod corpus;
#[path = "../../../ingest/tests/common/findings.rs"]
mod findings;
mod fuzz_findings;
mod pipeline;
mod reference;
mod series;
mod stack;
