//! Fuzz target: ingest's bounded parsing of one untrusted instance (`tfesi_ingest::parse_instance`,
//! the function behind `Ingest.Upload` and the C-STORE receiver) with the production limits.
//! Errors (rejections) are fine; a panic out of it, an abort, a stack overflow, a hang or an
//! allocation over the cap (`-malloc_limit_mb` in scripts/fuzz.sh) is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfesi_ingest::{ParseLimits, parse_instance};

fuzz_target!(
    init: { tfesi_fuzz::install_panic_policy(); },
    |data: &[u8]| {
        let limits = ParseLimits::default();
        // One copy, as ingest makes when it takes an upload's or a C-STORE's bytes.
        let _ = parse_instance(bytes::Bytes::copy_from_slice(data), &limits);
    }
);
