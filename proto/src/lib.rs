//! Generated Rust code (prost messages, tonic clients and servers) for the tfesi.*.v1 gRPC contracts.
//!
//! The `.proto` files under `proto/tfesi/` are the source of truth; this crate only compiles them.
//! Server traits are named as tonic generates them, for example
//! `registry::v1::registry_server::{Registry, RegistryServer}`.

/// Shared types (`tfesi.common.v1`): dates, spinal levels, sides, pagination, tensor metadata.
pub mod common {
    /// Version 1 of the shared types.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
        tonic::include_proto!("tfesi.common.v1");
    }
}

/// Ingest service (`tfesi.ingest.v1`): DICOM upload, study catalogue, surrogate id lookup.
pub mod ingest {
    /// Version 1 of the ingest contract.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
        tonic::include_proto!("tfesi.ingest.v1");
    }
}

/// Preprocess service (`tfesi.preprocess.v1`): series to tensor, spec, pipeline operations.
pub mod preprocess {
    /// Version 1 of the preprocess contract.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
        tonic::include_proto!("tfesi.preprocess.v1");
    }
}

/// Inference service (`tfesi.inference.v1`): predictions and the model repository.
pub mod inference {
    /// Version 1 of the inference contract.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
        tonic::include_proto!("tfesi.inference.v1");
    }
}

/// Registry service (`tfesi.registry.v1`): episodes, follow-ups, labels, snapshots, performance.
pub mod registry {
    /// Version 1 of the registry contract.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
        tonic::include_proto!("tfesi.registry.v1");
    }
}

/// Encoded `google.protobuf.FileDescriptorSet` of every tfesi contract and the well-known types
/// they import, for gRPC server reflection (`tonic_reflection::server::Builder::register_encoded_file_descriptor_set`).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tfesi_descriptor.bin"));

/// Fully qualified names of the four services, as reflection and health checks name them.
pub const SERVICE_NAMES: [&str; 4] = [
    "tfesi.ingest.v1.Ingest",
    "tfesi.preprocess.v1.Preprocess",
    "tfesi.inference.v1.Inference",
    "tfesi.registry.v1.Registry",
];

#[cfg(test)]
mod tests;
