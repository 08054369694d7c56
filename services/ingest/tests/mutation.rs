//! Mutation smoke test of `parse_instance`, the work of the `parse_instance` fuzz target
//! (fuzz/fuzz_targets/parse_instance.rs) on stable Rust: every corpus file and a fixed number of
//! deterministic mutants of each (tests/common/mutate.rs). A rejection is fine; a panic that
//! escapes `parse_instance` fails the test. `TFESI_MUTATION_ITERATIONS` sets the mutants per file
//! for longer runs by hand (docs/fuzzing.md).

#[path = "common/mutate.rs"]
mod mutate;

use tfesi_ingest::{ParseLimits, RejectCode, Verdict, parse_instance};

/// About 10 s in a debug build on a 2-core machine (docs/fuzzing.md).
const MUTANTS_PER_FILE: usize = 80;

#[test]
fn parse_instance_survives_mutated_corpus_files() {
    let limits = ParseLimits::default();
    mutate::campaign("parse_instance", MUTANTS_PER_FILE, Vec::new(), |input, tally| {
        // One copy, as ingest makes when it takes an upload's or a C-STORE's bytes.
        let result = parse_instance(bytes::Bytes::copy_from_slice(input.bytes), &limits);
        let kind = if input.index.is_some() { "mutants" } else { "corpus" };
        let outcome = match &result {
            Ok(parsed) if parsed.verdict == Verdict::Accept => "accepted",
            Ok(_) => "quarantined",
            Err(rejection) if rejection.code == RejectCode::DecoderPanic => "rejected (decoder panic caught)",
            Err(_) => "rejected",
        };
        tally.count(format!("{kind} {outcome}"));
        // The manifest's verdicts are checked by tests/ingest/corpus.rs; only counted here.
        if input.index.is_none() && input.expect == "error" && result.is_ok() {
            tally.count("corpus error rows accepted");
        }
    });
}
