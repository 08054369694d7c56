#!/usr/bin/env bash
# The inference serving benchmark on a GPU: tfesi-inference, in-process ONNX Runtime and the
# Python grpcio server, all on the CUDA execution provider, then the same on the CPU of the same
# machine (bench/README.md, "Inference serving on a GPU").
#
#   scripts/gpu-bench.sh pack     here (x86-64, network to PyPI): build the release binaries with
#                                 --features cuda and write the payload into .gpu/
#   scripts/gpu-bench.sh stash    there: keep .gpu/part1 in /tmp/tfesi-gpu (for a second call)
#   scripts/gpu-bench.sh run      there: unpack, print the card, self-test every model of
#                                 models/ on CUDA, run both benchmarks
#   scripts/gpu-bench.sh models   there: unpack and self-test the models on CUDA only
#   scripts/gpu-bench.sh cuda     there: unpack and run the CUDA benchmark only
#   scripts/gpu-bench.sh trace    there: unpack and trace the batched path on CUDA (every batch's
#                                 rows and run time, per sessions / batching / cuDNN search setting)
#   scripts/gpu-bench.sh          pack and run on one machine (a GPU box with cargo and PyPI)
#
# What travels (the development machines' GPU tool carries at most 64 MiB per call, so two
# parts): part1 is onnxruntime-gpu 1.31.1's CUDA provider with the cubins of every architecture
# but sm_${GPU_ARCH} zeroed (scripts/lib/fatbin_keep_arch.py; 284 MB, about 52 MB compressed);
# part2 is the ONNX Runtime core library, the onnxruntime Python package without its CUDA
# provider, grpcio and protobuf wheels (the versions of .venv, which the generated stubs need),
# the stripped service and bench binaries. The CUDA libraries themselves (cuBLAS, cuDNN, cuRAND,
# the runtime) are not carried: the GPU machine's PyTorch install has them (CUDA 13, cuDNN 9),
# and `run` puts every nvidia/*/lib folder of its Python on LD_LIBRARY_PATH. That machine has no
# zstd either: .gpu/zstd holds this machine's zstd with its libraries, behind a wrapper that sets
# LD_LIBRARY_PATH for zstd alone.
#
# With the device tool (two calls back to back: a machine goes back after 30 s idle):
#   1. carry [".gpu/part1.tar.zst", ".gpu/zstd"], command `scripts/gpu-bench.sh stash`
#   2. carry [".gpu/part2.tar.zst", ".gpu/zstd"], command `scripts/gpu-bench.sh run`
#   (results, logs included, land in $OUT)
#
# Environment: GPU_ARCH (SM version to keep, default 90: H100/H200), TFESI_BENCH_* (bench knobs,
# see services/inference/benches/serving/main.rs), TFESI_BENCH_SWEEP_RATES_CUDA (the CUDA run's
# open-loop rates, default 200,400,800,1600; set but empty: no sweep), OUT (where results go;
# default bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
GPU_ARCH="${GPU_ARCH:-90}"
PAYLOAD=.gpu
WORK=/tmp/tfesi-gpu
log() { echo "gpu-bench: $*" >&2; }

pack() {
    export SQLX_OFFLINE=true
    local staging
    staging="$(mktemp -d)"
    trap 'rm -rf "${staging}"' RETURN
    mkdir -p "${PAYLOAD}" "${staging}"/{bin,ort,py,wheels,cuda}

    log "building tfesi-inference and the serving bench with --features cuda (release)"
    local bench_exe
    bench_exe="$(cargo bench -p tfesi-inference --bench serving --features cuda --no-run --locked \
        --message-format=json \
        | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "serving" and m.get("executable"):
        print(m["executable"])')"
    [[ -x "${bench_exe}" ]] || { log "no serving bench executable was built"; exit 1; }
    strip -o "${staging}/bin/serving" "${bench_exe}"
    strip -o "${staging}/bin/tfesi-inference" target/release/tfesi-inference

    log "fetching onnxruntime-gpu==${ORT_VERSION} and the Python wheels"
    local venv_python=.venv/bin/python grpcio_version protobuf_version
    grpcio_version="$("${venv_python}" -c 'import grpc; print(grpc.__version__)')"
    protobuf_version="$("${venv_python}" -c 'import google.protobuf as p; print(p.__version__)')"
    local platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp "${platforms[@]}" -d "${staging}/wheels" \
        "onnxruntime-gpu==${ORT_VERSION}" "grpcio==${grpcio_version}" "protobuf==${protobuf_version}"
    local ort_wheel
    ort_wheel="$(ls "${staging}"/wheels/onnxruntime_gpu-*.whl)"
    python3 -m zipfile -e "${ort_wheel}" "${staging}/py"
    rm -f "${ort_wheel}"
    rm -rf "${staging}"/py/onnxruntime_gpu-*.dist-info
    local capi="${staging}/py/onnxruntime/capi"
    mv "${capi}/libonnxruntime.so.${ORT_VERSION}" "${staging}/ort/"
    cp "${capi}/libonnxruntime_providers_shared.so" "${staging}/ort/"
    python3 scripts/lib/fatbin_keep_arch.py "${capi}/libonnxruntime_providers_cuda.so" \
        "${staging}/cuda/libonnxruntime_providers_cuda.so" --arch "${GPU_ARCH}"
    rm -f "${capi}/libonnxruntime_providers_cuda.so" "${capi}/libonnxruntime_providers_tensorrt.so"

    mkdir -p "${PAYLOAD}/zstd/lib"
    cp "$(command -v zstd)" "${PAYLOAD}/zstd/zstd.bin"
    ldd "$(command -v zstd)" | awk '/=>/ {print $3}' | grep -v -E '/(libc|libm|ld-linux[^/]*)\.so' \
        | xargs -r -I{} cp -L {} "${PAYLOAD}/zstd/lib/"
    printf '#!/bin/sh\nd=$(dirname "$0"); LD_LIBRARY_PATH="$d/lib" exec "$d/zstd.bin" "$@"\n' \
        >"${PAYLOAD}/zstd/zstd"
    chmod +x "${PAYLOAD}/zstd/zstd"

    tar -C "${staging}" -cf - cuda | zstd -q -19 -T0 --long=27 -o "${PAYLOAD}/part1.tar.zst" -f
    tar -C "${staging}" -cf - bin ort py wheels | zstd -q -19 -T0 --long=27 -o "${PAYLOAD}/part2.tar.zst" -f
    ls -l "${PAYLOAD}" >&2
}

stash() {
    mkdir -p "${WORK}"
    cp "${PAYLOAD}/part1.tar.zst" "${WORK}/"
    log "part1 kept in ${WORK}"
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader >&2 || true
}

# Unpacks the payload and sets up the environment every later step uses.
prepare() {
    mkdir -p "${WORK}"
    for part in part1 part2; do
        if [[ -f "${PAYLOAD}/${part}.tar.zst" ]]; then
            cp "${PAYLOAD}/${part}.tar.zst" "${WORK}/"
        fi
        [[ -f "${WORK}/${part}.tar.zst" ]] || { log "${part} is neither in ${PAYLOAD} nor in ${WORK}"; exit 1; }
        zstd -q -d --long=27 -c "${WORK}/${part}.tar.zst" | tar -C "${WORK}" -xf -
    done
    ln -sf "${WORK}/cuda/libonnxruntime_providers_cuda.so" "${WORK}/ort/"
    ln -sf "${WORK}/cuda/libonnxruntime_providers_cuda.so" "${WORK}/py/onnxruntime/capi/"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "${WORK}/site" "${WORK}"/wheels/*.whl

    local nvidia_dir libs
    nvidia_dir="$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])')"
    libs="$(find "${nvidia_dir}" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)"
    export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
    export PYTHONPATH="${WORK}/py:${WORK}/site"
    export ORT_DYLIB_PATH="${WORK}/ort/libonnxruntime.so.${ORT_VERSION}"
    local card
    card="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv
    python3 -c 'import onnxruntime as o, grpc, google.protobuf as p; print("python: onnxruntime", o.__version__, o.get_available_providers(), "grpcio", grpc.__version__, "protobuf", p.__version__)'
    GPU_CARD="${card}"
}

# Starts tfesi-inference on CUDA (no CPU fallback) over a copy of the repository's models/ and
# prints the self-test of each model it loads at start (the default model, tfesi-cnn) on the
# card: the shipped model must go live there too. Arguments: extra VAR=value settings.
check_models() {
    local dir pid
    dir="$(mktemp -d)"
    cp -r models "${dir}/models"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"${dir}/secret"
    TFESI_INFERENCE__SERVER__LISTEN=127.0.0.1:0 TFESI_INFERENCE__REPOSITORY_DIR="${dir}/models" \
        TFESI_INFERENCE__RUNTIME__PROVIDER=cuda TFESI_INFERENCE__RUNTIME__ALLOW_CPU_FALLBACK=false \
        TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL=2 TFESI_INFERENCE__AUTH__HS256_SECRET_FILE="${dir}/secret" \
        TFESI_INFERENCE__TELEMETRY__LOG_FILTER=info env "$@" "${WORK}/bin/tfesi-inference" >"${dir}/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 60); do
        grep -q 'SERVING' "${dir}/log" && break
        kill -0 "${pid}" 2>/dev/null || break
        sleep 1
    done
    log "models on CUDA ${*:-(default settings)}:"
    sed 's/\x1b\[[0-9;]*m//g' "${dir}/log" | grep -E 'self-tested|SERVING|refused|ERROR|WARN' | cut -c1-400 >&2 || true
    grep -q 'self-tested' "${dir}/log" || tail -n 20 "${dir}/log" >&2
    kill "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
    rm -rf "${dir}"
}

# Arguments: `cuda` to run only the CUDA benchmark.
benches() {
    local card="${GPU_CARD}"
    local results="${OUT:-bench/results}"
    mkdir -p "${results}"
    export TFESI_BENCH_REPO_ROOT="${PWD}" TFESI_BENCH_INFERENCE_BIN="${WORK}/bin/tfesi-inference" \
        TFESI_PYTHON=python3 TFESI_BENCH_RESULTS="${results}"
    local failed=0
    log "CUDA on ${card}"
    TFESI_BENCH_PROVIDER=cuda TFESI_BENCH_DEVICE="${card}" \
        TFESI_BENCH_SWEEP_RATES="${TFESI_BENCH_SWEEP_RATES_CUDA-200,400,800,1600}" \
        TFESI_BENCH_SWEEP_SECONDS="${TFESI_BENCH_SWEEP_SECONDS:-3}" \
        timeout "${TFESI_GPU_BENCH_TIMEOUT:-240}" "${WORK}/bin/serving" --bench 2>&1 \
        | tee "${results}/cuda.log" || { failed=1; log "the CUDA benchmark failed"; }
    [[ "${1:-}" == cuda ]] && return "${failed}"
    log "CPU of the same machine"
    # Apart from the development machine's CPU figures (bench/results/inference-serving.json).
    mkdir -p "${results}/gpu-machine-cpu"
    TFESI_BENCH_RESULTS="${results}/gpu-machine-cpu" TFESI_BENCH_PROVIDER=cpu TFESI_BENCH_SWEEP_RATES="" \
        TFESI_BENCH_ROUNDS="${TFESI_BENCH_ROUNDS:-3}" \
        timeout "${TFESI_CPU_BENCH_TIMEOUT:-150}" "${WORK}/bin/serving" --bench 2>&1 \
        | tee "${results}/gpu-machine-cpu/cpu.log" || { failed=1; log "the CPU benchmark failed"; }
    return "${failed}"
}

# Traces the batched path on CUDA: the CUDA benchmark (one round, no sweep) once per setting
# below, each service logging every batch it runs (rows, assembly and run time), then a summary
# per batch size (scripts/lib/batch_trace.py). Results and logs in $OUT/cuda-trace/<setting>/.
trace() {
    local card="${GPU_CARD}" results="${OUT:-bench/results}/cuda-trace" failed=0
    local settings=(
        "s2:TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL=2"
        "s2-batch1:TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL=2 TFESI_INFERENCE__BATCHING__MAX_BATCH_SIZE=1"
        "s2-heuristic:TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL=2 TFESI_INFERENCE__RUNTIME__CUDA_CONV_ALGO_SEARCH=heuristic"
        "s2-warm:TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL=2 TFESI_INFERENCE__RUNTIME__WARM_UP_BATCH_SIZES=true"
        "s8:TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL=8"
        "s8-heuristic:TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL=8 TFESI_INFERENCE__RUNTIME__CUDA_CONV_ALGO_SEARCH=heuristic"
        "s8-warm:TFESI_INFERENCE__RUNTIME__SESSIONS_PER_MODEL=8 TFESI_INFERENCE__RUNTIME__WARM_UP_BATCH_SIZES=true"
    )
    # Settings are run in order of interest; none starts once the budget is spent.
    local budget="${TFESI_GPU_TRACE_BUDGET:-420}" started="${SECONDS}"
    for setting in "${settings[@]}"; do
        local name="${setting%%:*}" vars="${setting#*:}"
        if (( SECONDS - started > budget )); then
            log "trace ${name} skipped: TFESI_GPU_TRACE_BUDGET (${budget} s) spent"
            continue
        fi
        mkdir -p "${results}/${name}/logs"
        log "trace ${name}: ${vars}"
        # shellcheck disable=SC2086 # vars is a list of VAR=value words
        env ${vars} TFESI_BENCH_REPO_ROOT="${PWD}" TFESI_BENCH_INFERENCE_BIN="${WORK}/bin/tfesi-inference" \
            TFESI_PYTHON=python3 TFESI_BENCH_RESULTS="${results}/${name}" TFESI_BENCH_LOG_DIR="${results}/${name}/logs" \
            TFESI_BENCH_SERVICE_LOG_FILTER="warn,tfesi_inference::model=info,tfesi_inference::batcher=debug" \
            TFESI_INFERENCE__TELEMETRY__LOG_FORMAT=json \
            TFESI_BENCH_PROVIDER=cuda TFESI_BENCH_DEVICE="${card}" TFESI_BENCH_SWEEP_RATES="" \
            TFESI_BENCH_ROUNDS="${TFESI_BENCH_ROUNDS:-1}" TFESI_BENCH_CONCURRENT="${TFESI_BENCH_CONCURRENT:-800}" \
            timeout "${TFESI_GPU_TRACE_TIMEOUT:-100}" "${WORK}/bin/serving" --bench >"${results}/${name}/bench.log" 2>&1 \
            || { failed=1; log "trace ${name} failed"; }
        grep -E '^\| (sequential|concurrent|batch|[0-9])' "${results}/${name}/bench.log" >&2 \
            || tail -n 30 "${results}/${name}/bench.log" >&2
        python3 scripts/lib/batch_trace.py "${results}/${name}"/logs/tfesi-inference*.log | tee "${results}/${name}/batches.txt" >&2
    done
    return "${failed}"
}

# The GPU machine has no zstd: use the carried one.
if ! command -v zstd >/dev/null && [[ -x "${PAYLOAD}/zstd/zstd" ]]; then
    PATH="${PWD}/${PAYLOAD}/zstd:${PATH}"
fi

case "${1:-all}" in
    pack) pack ;;
    stash) stash ;;
    run) prepare && check_models && benches ;;
    cuda) prepare && benches cuda ;;
    trace) prepare && trace ;;
    models) prepare && check_models && check_models TFESI_INFERENCE__RUNTIME__CUDA_TF32=true ;;
    all) pack && prepare && check_models && benches ;;
    *) log "usage: scripts/gpu-bench.sh [pack|stash|run|models|cuda|trace]"; exit 2 ;;
esac
