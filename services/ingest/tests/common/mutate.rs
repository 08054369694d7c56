//! Deterministic mutation smoke tests of the parsers of untrusted input: the stable-Rust part of
//! fuzzing that runs in the normal test suite (docs/fuzzing.md, "What CI runs"). One copy, used by
//! `services/ingest/tests/mutation.rs` and, through `#[path]`, by
//! `services/preprocess/tests/mutation.rs`.
//!
//! Every file of the DICOM corpus fixtures is run as it is, then as a fixed number of mutants. A
//! mutant is 1-3 operations (bit flip, byte set to an interesting value, truncation, a chunk
//! duplicated or removed, and most often a length field rewritten with a huge value) drawn from a
//! splitmix64 stream seeded by the file's name and the mutant's index, so mutant `i` of a file is
//! the same on every machine and every run. A panic that escapes the code under test fails the
//! test with the file, the index, the operations and the path of the input written to a file.

// Each of the two tests uses a part of this module.
#![allow(dead_code)]

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::Instant;

/// Mutants per corpus file by default; this variable overrides it for longer runs by hand.
pub const ITERATIONS_ENV: &str = "TFESI_MUTATION_ITERATIONS";

/// splitmix64: small, fast and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The stream of mutant `index` of the file `name`, and of nothing else.
    pub fn for_mutant(name: &str, index: usize) -> Self {
        // FNV-1a of the name, mixed with the index.
        let hash = name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Self::new(hash ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Where a length field plausibly sits: after an explicit-VR tag and VR, after an item or
/// delimiter tag, or after a tag of a common group in implicit VR.
#[derive(Debug, Clone, Copy)]
struct LengthField {
    offset: usize,
    width: usize,
}

const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL",
    b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];
const LONG_VRS: [&[u8; 2]; 13] =
    [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"];
/// Groups whose tags start most elements of the corpus (implicit VR has no VR to recognise).
const COMMON_GROUPS: [u16; 8] = [0x0002, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028, 0x0040, 0x7fe0];

fn u16_at(data: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([data[at], data[at + 1]])
}

fn length_fields(data: &[u8]) -> Vec<LengthField> {
    let mut fields = Vec::new();
    for i in 0..data.len().saturating_sub(8) {
        let group = u16_at(data, i);
        let vr = [data[i + 4], data[i + 5]];
        // Standard elements have even groups; private ones are left alone.
        let standard = group.is_multiple_of(2);
        let short = standard && SHORT_VRS.iter().any(|v| **v == vr);
        let long = standard && LONG_VRS.iter().any(|v| **v == vr);
        if short {
            fields.push(LengthField { offset: i + 6, width: 2 });
        } else if long && data[i + 6] == 0 && data[i + 7] == 0 && i + 12 <= data.len() {
            fields.push(LengthField { offset: i + 8, width: 4 });
        } else if group == 0xfffe && matches!(u16_at(data, i + 2), 0xe000 | 0xe00d | 0xe0dd) {
            fields.push(LengthField { offset: i + 4, width: 4 });
        } else if COMMON_GROUPS.contains(&group) {
            let length = u32::from_le_bytes([data[i + 4], data[i + 5], data[i + 6], data[i + 7]]);
            if length as usize <= data.len() - i - 8 {
                fields.push(LengthField { offset: i + 4, width: 4 });
            }
        }
    }
    fields
}

/// Bytes that break parsers: zero, all ones, the sign boundaries; in text, what breaks numbers.
const INTERESTING_BYTES: [u8; 4] = [0x00, 0xff, 0x7f, 0x80];
const INTERESTING_TEXT: [u8; 7] = [b'-', b'.', b'e', b'9', b'\\', b' ', b'N'];

/// One mutant of `seed`: its bytes and what was done, for the failure message.
pub fn mutant(name: &str, seed: &[u8], index: usize) -> (Vec<u8>, String) {
    let mut rng = Rng::for_mutant(name, index);
    let fields = length_fields(seed);
    let mut data = seed.to_vec();
    let mut done = String::new();
    for _ in 0..1 + rng.below(3) {
        let len = data.len();
        // Half the positions in the first 4 KiB, where the header is.
        let at = if rng.below(2) == 0 { rng.below(len.min(4096)) } else { rng.below(len) };
        let live: Vec<_> = fields.iter().filter(|f| f.offset + f.width <= len).collect();
        match rng.below(10) {
            0..=3 if !live.is_empty() => {
                let field = live[rng.below(live.len())];
                let end = (len - field.offset - field.width) as u64;
                let max = if field.width == 4 { u64::from(u32::MAX) } else { u64::from(u16::MAX) };
                // All ones, all ones but the last bit, both sides of the sign bit, just past the
                // file, just past its end, exactly to its end, nothing.
                let value = rng.pick(&[
                    max,
                    max - 1,
                    max >> 1,
                    (max >> 1) + 1,
                    len as u64 + 1,
                    end + 1,
                    end - end % 2,
                    0,
                ]);
                let value = value.min(max);
                data[field.offset..field.offset + field.width]
                    .copy_from_slice(&value.to_le_bytes()[..field.width]);
                let _ = write!(done, "length@{}={value:#x}; ", field.offset);
            }
            _ if len == 0 => {
                data.extend_from_slice(b"DICM");
                done.push_str("grow 4; ");
            }
            4 => {
                let bit = rng.below(8);
                data[at] ^= 1 << bit;
                let _ = write!(done, "flip@{at}.{bit}; ");
            }
            5 | 6 => {
                let value = if data[at].is_ascii_digit() || data[at] == b'.' {
                    rng.pick(&INTERESTING_TEXT)
                } else {
                    rng.pick(&INTERESTING_BYTES)
                };
                data[at] = value;
                let _ = write!(done, "set@{at}={value:#04x}; ");
            }
            7 => {
                data.truncate(at);
                let _ = write!(done, "truncate@{at}; ");
            }
            8 => {
                let chunk = 1 + rng.below(len.min(2048));
                let start = rng.below(len - chunk + 1);
                let copy = data[start..start + chunk].to_vec();
                data.splice(at..at, copy);
                let _ = write!(done, "duplicate {start}+{chunk}@{at}; ");
            }
            _ => {
                let chunk = 1 + rng.below((len - at).min(2048));
                data.drain(at..at + chunk);
                let _ = write!(done, "remove {at}+{chunk}; ");
            }
        }
    }
    (data, done.trim_end_matches("; ").to_string())
}

/// One input handed to a campaign's check.
pub struct Input<'a> {
    /// Corpus path, such as `valid/MR_small.dcm`.
    pub name: &'a str,
    /// `None` for the corpus file as it is.
    pub index: Option<usize>,
    pub bytes: &'a [u8],
    /// The manifest's `expect` column (`ok` or `error`).
    pub expect: &'a str,
}

impl Input<'_> {
    /// A stream for the check's own choices, fixed by the input.
    pub fn rng(&self) -> Rng {
        Rng::for_mutant(self.name, self.index.map_or(usize::MAX, |i| i ^ 0x5a5a))
    }
}

/// Named counters, printed as one line at the end.
#[derive(Debug, Default)]
pub struct Tally(BTreeMap<String, usize>);

impl Tally {
    pub fn count(&mut self, key: impl Into<String>) {
        *self.0.entry(key.into()).or_default() += 1;
    }
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Panics the code under test catches itself (the dicom-rs decoders) are expected here: print
/// each place once instead of a message per mutant, and remember the last one of each thread for
/// the failure message of a panic that escapes.
fn quiet_panic_hook() {
    static ONCE: Once = Once::new();
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let place = info
                .location()
                .map_or_else(|| "unknown place".into(), |l| format!("{}:{}", l.file(), l.line()));
            let text = format!("{} at {place}", payload_text(info.payload()));
            let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
            if SEEN.lock().map(|mut seen| seen.get_or_insert_with(HashSet::new).insert(place)).unwrap_or(true)
            {
                eprintln!("mutation: panic in thread {thread}: {text} [first at this place]");
            }
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(text));
        }));
    });
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dicom-corpus")
}

/// (path, expect) of every row of the corpus manifest, in its order.
fn corpus() -> Vec<(String, String)> {
    let manifest = std::fs::read_to_string(corpus_dir().join("manifest.tsv")).expect("corpus manifest");
    manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut columns = line.split('\t');
            Some((columns.next()?.to_string(), columns.next()?.to_string()))
        })
        .collect()
}

fn iterations(default: usize) -> usize {
    std::env::var(ITERATIONS_ENV).map_or(default, |value| {
        value.trim().parse().unwrap_or_else(|_| panic!("{ITERATIONS_ENV}={value} is not a whole number"))
    })
}

/// Largest resident set of this process so far, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok());
    kib.unwrap_or(0) / 1024
}

/// Runs `check` on every corpus file (and `extra` seed) as it is and on `default_iterations`
/// mutants of each (or
/// `TFESI_MUTATION_ITERATIONS`), each call under `catch_unwind`. A panic that escapes `check` is
/// a failure: the input is written to the temporary directory and the test fails naming it.
/// Before each call the input is also written to an in-flight file, named at the start, which
/// holds the culprit if the process dies without a report (a stack overflow or an abort).
/// `extra` adds seed files beyond the corpus, as (name, bytes), expected to be valid.
pub fn campaign(
    test: &str,
    default_iterations: usize,
    extra: Vec<(String, Vec<u8>)>,
    mut check: impl FnMut(&Input<'_>, &mut Tally),
) {
    quiet_panic_hook();
    let mutants = iterations(default_iterations);
    let started = Instant::now();
    let pid = std::process::id();
    let inflight = std::env::temp_dir().join(format!("tfesi-mutation-{test}-{pid}-inflight.dcm"));
    eprintln!("mutation {test}: {mutants} mutants per corpus file; input in flight: {}", inflight.display());
    let mut tally = Tally::default();
    let mut inputs = 0;
    let corpus = corpus().into_iter().map(|(name, expect)| {
        let seed = std::fs::read(corpus_dir().join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        (name, expect, seed)
    });
    for (name, expect, seed) in corpus.chain(extra.into_iter().map(|(name, seed)| (name, "ok".into(), seed)))
    {
        for index in std::iter::once(None).chain((0..mutants).map(Some)) {
            let (bytes, done) = match index {
                None => (seed.clone(), "unmutated".to_string()),
                Some(index) => mutant(&name, &seed, index),
            };
            std::fs::write(&inflight, &bytes).expect("write the input in flight");
            let input = Input { name: &name, index, bytes: &bytes, expect: &expect };
            inputs += 1;
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| check(&input, &mut tally))) {
                let message = LAST_PANIC
                    .with(|last| last.borrow_mut().take())
                    .unwrap_or_else(|| payload_text(payload.as_ref()));
                let which = index.map_or_else(|| "unmutated".into(), |i| format!("mutant {i}"));
                let saved = std::env::temp_dir().join(format!(
                    "tfesi-mutation-{test}-{pid}-{}-{}.dcm",
                    name.replace(['/', ' '], "_"),
                    which.replace(' ', "-")
                ));
                std::fs::write(&saved, &bytes).expect("write the failing input");
                let _ = std::fs::remove_file(&inflight);
                panic!(
                    "mutation {test}: a panic escaped on {name} {which} ({done}): {message}\n  input ({} bytes): {}\n  reproduce: {ITERATIONS_ENV}={} cargo nextest run -p {} -E 'binary(mutation)'",
                    bytes.len(),
                    saved.display(),
                    index.map_or(0, |i| i + 1),
                    env!("CARGO_PKG_NAME"),
                );
            }
        }
    }
    let _ = std::fs::remove_file(&inflight);
    let counts: Vec<String> = tally.0.iter().map(|(key, n)| format!("{key} {n}")).collect();
    println!(
        "mutation {test}: {inputs} inputs ({mutants} mutants per corpus file) in {:.1} s, peak RSS {} MiB: {}",
        started.elapsed().as_secs_f64(),
        peak_rss_mib(),
        counts.join(", ")
    );
}
