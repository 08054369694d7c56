//! Compiles the tfesi.*.v1 contracts with protox (no system protoc) and emits a descriptor set.

use std::path::{Path, PathBuf};

/// Every contract file, relative to the `proto/` directory; the include root is `proto/` itself.
const PROTO_FILES: &[&str] = &[
    "tfesi/common/v1/common.proto",
    "tfesi/ingest/v1/ingest.proto",
    "tfesi/preprocess/v1/preprocess.proto",
    "tfesi/inference/v1/inference.proto",
    "tfesi/registry/v1/records.proto",
    "tfesi/registry/v1/dataset.proto",
    "tfesi/registry/v1/registry.proto",
];

/// Name of the encoded `FileDescriptorSet` written to `OUT_DIR`, read by `src/lib.rs`.
const DESCRIPTOR_FILE: &str = "tfesi_descriptor.bin";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={}", manifest_dir.join(file).display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    // protox embeds google/protobuf/*.proto (Timestamp, Duration, ...), so only our root is needed.
    let file_descriptors = protox::compile(PROTO_FILES, [Path::new(&manifest_dir)])?;

    // The full set (including the well-known types it imports) is what server reflection serves.
    let encoded = prost::Message::encode_to_vec(&file_descriptors);
    std::fs::write(out_dir.join(DESCRIPTOR_FILE), encoded)?;

    // Tensor data as `bytes::Bytes`: decoding takes a slice of tonic's receive buffer instead of
    // copying megabytes of image into a fresh Vec (the inference serving bench's Predict path).
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".tfesi.common.v1.Tensor.data")
        .compile_fds(file_descriptors)?;
    Ok(())
}
