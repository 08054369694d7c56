#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with cargo-fuzz (libFuzzer + AddressSanitizer):
# ingest's parse_instance and preprocess's series-to-tensor. See docs/fuzzing.md.
#
#   scripts/fuzz.sh [--seconds N] [--keep-going] [--strict-panics] [target...]
#
# Runs each target (default: all) for N seconds (default 30) and exits non-zero if any target
# crashed (panic out of the service, abort, stack overflow, leak, timeout, or an allocation over
# the cap), printing where the crashing input was written. By default a target stops at its first
# crash; --keep-going (libFuzzer's fork mode) records each crash and goes on for the whole time,
# for long runs by hand. --strict-panics also counts panics the services catch
# (docs/fuzzing.md). The seed corpus is rebuilt on every run under fuzz/corpus/seeds/ from
# tests/fixtures/dicom-corpus (the repository's copy of ../shared/dicom-corpus) plus generated
# adversarial inputs (fuzz/make_seeds.py); what the fuzzer finds accumulates in
# fuzz/corpus/<target>/ (git-ignored), so longer runs by hand continue where the last one stopped.
# The build goes to fuzz/target, or to $CARGO_TARGET_DIR when that is set (which CI may keep between runs).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
strict=0
keep_going=0
targets=()
while (($#)); do
    case "$1" in
        --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
        --seconds=*) seconds="${1#--seconds=}"; shift ;;
        --strict-panics) strict=1; shift ;;
        --keep-going) keep_going=1; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --seconds takes whole seconds, got '$seconds'" >&2; exit 2; }
((${#targets[@]})) || targets=(parse_instance series_tensor)

# The allocation cap. One allocation over MALLOC_LIMIT_MB is a crash: the largest buffer the
# production limits allow is 512 MiB (ingest ParseLimits::max_decoded_bytes; preprocess
# DecodeLimits::max_decoded_values x 4-byte i32 = 512 MiB), so anything bigger means a declared
# length reached an allocation without a limit. RSS_LIMIT_MB bounds the whole process (libFuzzer's
# default), with room for AddressSanitizer's overhead on top of one capped buffer.
MALLOC_LIMIT_MB="${MALLOC_LIMIT_MB:-512}"
RSS_LIMIT_MB="${RSS_LIMIT_MB:-2048}"
# An input that takes longer than this is reported as a hang.
TIMEOUT_S="${TIMEOUT_S:-20}"
# Largest input the fuzzer makes (longer seeds are cut): every corpus file but the two biggest
# (589 and 511 KB) fits, and smaller inputs run faster.
MAX_LEN="${MAX_LEN:-131072}"
# The repository's copy of ../shared/dicom-corpus (the same files), so that a clean clone has it.
DICOM_CORPUS="${DICOM_CORPUS:-tests/fixtures/dicom-corpus}"

# The fuzz crate compiles tfesi-ingest and tfesi-preprocess (and sqlx's macros): same env as the
# workspace build.
export SQLX_OFFLINE=true
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

# cargo-fuzz hands rustc unstable flags (-Zsanitizer=address and friends). A nightly toolchain takes
# them as they are; without one, the workspace's stable toolchain takes them with RUSTC_BOOTSTRAP=1
# (it ships the AddressSanitizer runtime for x86_64 Linux), so no second toolchain is required.
if rustup toolchain list | grep -q '^nightly'; then
    cargo_fuzz=(cargo +nightly fuzz)
    echo "fuzz.sh: $(rustc +nightly --version)"
else
    export RUSTC_BOOTSTRAP=1
    cargo_fuzz=(cargo fuzz)
    echo "fuzz.sh: $(rustc --version), with RUSTC_BOOTSTRAP=1 (no nightly toolchain)"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
[[ -d "$DICOM_CORPUS/valid" ]] || { echo "fuzz.sh: no DICOM corpus at $DICOM_CORPUS (set DICOM_CORPUS)" >&2; exit 1; }

seeds=fuzz/corpus/seeds
rm -rf "$seeds"
python3 fuzz/make_seeds.py "$DICOM_CORPUS" "$seeds"
# Every kept crash input (fuzz/findings/<date>/<target>-<kind>-<hash>) is a seed of its target, so
# libFuzzer replays it first: a fix that regresses fails the run before any mutation.
for kept in fuzz/findings/*/*-*; do
    name="$(basename "$kept")"
    target="${name%%-*}"
    if [[ -d "$seeds/$target" ]]; then
        cp "$kept" "$seeds/$target/finding-$(basename "$(dirname "$kept")")-$name"
    fi
done

start=$(date +%s)
# One target builds only that one; several build them all.
build_args=()
((${#targets[@]} == 1)) && build_args=("${targets[0]}")
mkdir -p fuzz/artifacts
if ! "${cargo_fuzz[@]}" build -O "${build_args[@]}" >fuzz/artifacts/build.log 2>&1; then
    grep -Ev '^\s*(Compiling|Downloaded|Downloading)' fuzz/artifacts/build.log | tail -40 >&2
    echo "fuzz.sh: the fuzz build failed (fuzz/artifacts/build.log)" >&2
    exit 1
fi
echo "fuzz.sh: build took $(( $(date +%s) - start )) s"

export TFESI_FUZZ_STRICT_PANICS="$strict"
mode=()
((keep_going)) && mode=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
failed=()
for target in "${targets[@]}"; do
    artifacts="fuzz/artifacts/$target"
    mkdir -p "fuzz/corpus/$target" "$artifacts"
    log="$artifacts/last-run.log"
    marker="$artifacts/.run-started"
    touch "$marker"
    echo "=== $target: ${seconds} s (malloc cap ${MALLOC_LIMIT_MB} MB, rss cap ${RSS_LIMIT_MB} MB, timeout ${TIMEOUT_S} s)"
    set +e
    "${cargo_fuzz[@]}" run -O "$target" "fuzz/corpus/$target" "$seeds/$target" -- \
        -max_total_time="$seconds" -malloc_limit_mb="$MALLOC_LIMIT_MB" -rss_limit_mb="$RSS_LIMIT_MB" \
        -timeout="$TIMEOUT_S" -max_len="$MAX_LEN" -print_final_stats=1 "${mode[@]}" >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^fuzz: |^#[0-9]+ +(INITED|DONE)|^#[0-9]+: cov:|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb|slowest_unit_time_sec)' "$log" | tail -12 || true
    # Crash inputs written during this run (fork mode exits 0 after ignored crashes).
    new=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) -newer "$marker" | sort)
    if ((rc != 0)) || [[ -n "$new" ]]; then
        failed+=("$target")
        echo "!!! $target crashed (exit $rc); log: $log"
        grep -E '^==[0-9]+==ERROR|panicked at|^SUMMARY|out-of-memory|^fuzz: uncaught' "$log" | sort | uniq -c | head -20 || true
        for artifact in $new; do
            echo "!!! crash input: $artifact"
        done
        echo "    reproduce: ${cargo_fuzz[*]} run -O $target INPUT; minimize: ${cargo_fuzz[*]} tmin -O $target INPUT"
    fi
done
echo "fuzz.sh: total $(( $(date +%s) - start )) s"
if ((${#failed[@]})); then
    echo "fuzz.sh: crashed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: no crash in ${targets[*]}"
