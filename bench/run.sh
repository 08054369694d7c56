#!/usr/bin/env bash
# Runs every benchmark of the harness in turn, release builds, and collects their results in
# bench/results/ (one JSON file each, overwritten on every run). Not part of CI: timings on shared
# machines mean little, and each benchmark already runs its baseline beside ours.
#
#   bench/run.sh              every benchmark
#   bench/run.sh serving      only the named ones (prep, serving, followups, ingest, memory,
#                             end_to_end)
#
# Needs what scripts/setup.sh installs (.venv with the Python baselines, the ONNX Runtime library).
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE="${SQLX_OFFLINE:-true}"
results="$PWD/bench/results"
mkdir -p "$results"
python="${TFESI_PYTHON:-$PWD/.venv/bin/python}"
log() { echo "bench: $*" >&2; }

if [[ ! -x "$python" ]]; then
    log "$python is missing: run scripts/setup.sh first"
    exit 1
fi

# Series to tensor (services/preprocess/benches/prep.rs): one core for ours and for Python. It
# prints a Markdown table; the table is kept as JSON next to the others.
run_prep() {
    cargo bench -p tfesi-preprocess --bench prep --no-run
    local table="$results/series-to-tensor.md"
    RAYON_NUM_THREADS=1 taskset -c 0 cargo bench -p tfesi-preprocess --bench prep | tee "$table"
    "$python" bench/markdown_table_to_json.py series-to-tensor \
        "RAYON_NUM_THREADS=1 taskset -c 0 cargo bench -p tfesi-preprocess --bench prep" \
        <"$table" >"$results/series-to-tensor.json"
}

# Inference serving (services/inference/benches/serving): writes its own JSON.
run_serving() {
    TFESI_BENCH_RESULTS="$results" cargo bench -p tfesi-inference --bench serving
}

# Registry follow-ups/s beside pgbench (services/registry/benches/followups.rs): needs the local
# Postgres (127.0.0.1:5432, user postgres) and its pgbench (Debian's postgresql-NN package); writes
# its own JSON.
run_followups() {
    TFESI_BENCH_RESULTS="$results" cargo bench -p tfesi-registry --bench followups
}

# Ingest throughput beside Orthanc (services/ingest/benches/ingest.rs): needs the local Postgres and
# Redis, dcmtk's storescu (scripts/setup.sh) and Debian's orthanc, installed here on first use (only
# the benchmark needs it, so the test setup does not). The bench starts its own Orthanc on free
# ports and never touches a system one; writes its own JSON.
run_ingest() {
    if [[ ! -x /usr/sbin/Orthanc ]]; then
        log "installing Debian's orthanc (the ingest baseline)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q orthanc >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q orthanc >/dev/null; }
    fi
    TFESI_BENCH_RESULTS="$results" cargo bench -p tfesi-ingest --bench ingest
}

# Resident memory of each service idle and under a synthetic cohort (tests/benches/memory.rs): the
# four release binaries as the end-to-end tests start them, on the local Postgres and Redis; the
# bench builds the service binaries and `tfesi` in release first; writes its own JSON.
run_memory() {
    TFESI_BENCH_RESULTS="$results" cargo bench -p tfesi-e2e --bench memory
}

# Study upload to stored prediction on the whole stack with the shipped model (tests/benches/
# end_to_end.rs): the stages alone, the pipeline's overhead over their sum, latency against offered
# load; builds the four release service binaries first; writes its own JSON. Then the plots of
# latency against load (bench/plot.py: this run's and the inference serving results').
run_end_to_end() {
    TFESI_BENCH_RESULTS="$results" cargo bench -p tfesi-e2e --bench end_to_end
    "$python" bench/plot.py "$results"
}

all=(prep serving followups ingest memory end_to_end)
selected=("$@")
[[ ${#selected[@]} -eq 0 ]] && selected=("${all[@]}")
for name in "${selected[@]}"; do
    case "$name" in
        prep | serving | followups | ingest | memory | end_to_end) ;;
        *) log "unknown benchmark '$name' (known: ${all[*]})"; exit 2 ;;
    esac
done
for name in "${selected[@]}"; do
    log "running $name"
    "run_$name"
done
log "results in $results:"
ls -1 "$results" >&2
