//! Integration tests of tfesi-inference: the domain on a real ONNX Runtime, then gRPC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod domain;
mod grpc;
mod support;
