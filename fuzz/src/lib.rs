//! Shared helpers of the fuzz targets: the panic policy and the series input format.

use std::collections::HashSet;
use std::sync::Mutex;

/// Panic policy, installed from each target's `init`.
///
/// libfuzzer-sys aborts on every panic, including panics that the services deliberately catch
/// (`catch_unwind` around the dicom-rs decoders in ingest's `parse_instance` and preprocess's
/// `decode_instance`). By default those caught panics are not crashes: the services' contract
/// is "never panics out, never aborts", and a caught decoder panic becomes a rejection. Each
/// distinct panic location is still printed once (`fuzz: caught panic at ...`) so a run shows
/// them. A panic that escapes the target still aborts: libfuzzer-sys wraps the target in
/// `catch_unwind` and aborts when it unwinds out.
///
/// `TFESI_FUZZ_STRICT_PANICS=1` keeps libfuzzer-sys's hook: every panic, caught or not, is a
/// crash, which finds the decoder bugs behind the safety net.
pub fn install_panic_policy() {
    if std::env::var_os("TFESI_FUZZ_STRICT_PANICS").is_some_and(|v| v == "1") {
        return;
    }
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    // Drop libfuzzer-sys's aborting hook; the default hook's backtrace printing is not wanted
    // on every caught panic either.
    drop(std::panic::take_hook());
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown location".into());
        let Ok(mut seen) = SEEN.lock() else { return };
        if seen.get_or_insert_with(HashSet::new).insert(location.clone()) {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
            eprintln!(
                "fuzz: panic at {location} (thread {thread}): {message} [first at this location; a crash only if it escapes the service's catch_unwind]"
            );
        }
    }));
}

/// The series target's input: `flags`, `spacing`, then `count - 1` little-endian u32 lengths,
/// then the instances' bytes back to back (the last takes the rest; a length past the end is
/// cut to what is left).
///
/// * `flags & 3`: number of instances minus 1 (1 to 4 instances).
/// * `flags & 4`: also build a series of `spec.slices` frames from the first decoded instance,
///   so the geometry, normalisation and resampling stages see the fuzzed pixels and geometry
///   (a single corpus file alone has too few slices to get past the slice count check).
/// * `spacing`: slice spacing of that built series, in tenths of a millimetre (0 = coincident
///   slices, which must be refused cleanly).
#[derive(Debug)]
pub struct SeriesInput<'a> {
    pub instances: Vec<&'a [u8]>,
    pub replicate: bool,
    pub spacing_mm: f64,
}

impl<'a> SeriesInput<'a> {
    pub fn split(data: &'a [u8]) -> Option<Self> {
        let (&flags, rest) = data.split_first()?;
        let (&spacing, mut rest) = rest.split_first()?;
        let count = 1 + usize::from(flags & 3);
        let mut lengths = Vec::with_capacity(count - 1);
        for _ in 1..count {
            let (head, tail) = rest.split_at_checked(4)?;
            lengths.push(u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize);
            rest = tail;
        }
        let mut instances = Vec::with_capacity(count);
        for length in lengths {
            let (one, tail) = rest.split_at(length.min(rest.len()));
            instances.push(one);
            rest = tail;
        }
        instances.push(rest);
        Some(Self { instances, replicate: flags & 4 != 0, spacing_mm: f64::from(spacing) / 10.0 })
    }
}
