//! Synthetic patients as the platform's API callers see them: the episode, injection and
//! follow-up mappings live in `tfesi_synth::api` (shared with `tfesi demo`); the upload of a
//! study over gRPC is here.

use tfesi_proto::ingest::v1 as ingest;

pub use tfesi_synth::api::{date, episode_details, follow_up, injection_details};

/// The upload stream of a set of Part 10 files: begin, chunks of `chunk_bytes`, end, per file.
pub fn upload_messages(files: &[Vec<u8>], chunk_bytes: usize) -> Vec<ingest::UploadRequest> {
    let mut messages = Vec::new();
    let part = |part| ingest::UploadRequest { part: Some(part) };
    for (index, bytes) in files.iter().enumerate() {
        messages.push(part(ingest::upload_request::Part::Begin(ingest::InstanceBegin {
            client_ref: format!("file-{index:04}"),
            declared_size_bytes: bytes.len() as u64,
            sha256: None,
        })));
        for chunk in bytes.chunks(chunk_bytes.max(1)) {
            messages.push(part(ingest::upload_request::Part::Chunk(chunk.to_vec())));
        }
        messages.push(part(ingest::upload_request::Part::End(ingest::InstanceEnd {})));
    }
    messages
}
