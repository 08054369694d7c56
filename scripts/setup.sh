#!/usr/bin/env bash
# Prepares this machine for building, testing and running the platform. Idempotent: each step
# checks first and does nothing when its piece is already there.
#
#   scripts/setup.sh            everything the test suite and `tfesi dev` need
#   scripts/setup.sh --check    only report what is missing (exit 1 if anything is)
#
# Steps: Debian packages (dcmtk, cmake, g++, Chromium for the browser tests), PostgreSQL and
# Redis answering on 127.0.0.1 (started when installed but stopped), the ONNX Runtime library
# (from the PyPI wheel, see scripts/setup-onnxruntime.sh), and a Python virtual environment
# (.venv) with the reference tools of every requirements file in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECK_ONLY=0
[[ "${1:-}" == "--check" ]] && CHECK_ONLY=1
missing=()
log() { echo "setup: $*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
need_pkgs=()
command -v dcmdump >/dev/null 2>&1 || need_pkgs+=(dcmtk)
command -v storescu >/dev/null 2>&1 || need_pkgs+=(dcmtk)
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
command -v g++ >/dev/null 2>&1 || need_pkgs+=(g++)
command -v psql >/dev/null 2>&1 || need_pkgs+=(postgresql-client)
command -v redis-cli >/dev/null 2>&1 || need_pkgs+=(redis-tools)
[[ -x /usr/bin/chromium ]] || need_pkgs+=(chromium)
[[ -x /usr/bin/chromedriver ]] || need_pkgs+=(chromium-driver)
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
    # shellcheck disable=SC2207
    need_pkgs=($(printf '%s\n' "${need_pkgs[@]}" | sort -u))
    if [[ $CHECK_ONLY == 1 ]]; then
        missing+=("debian packages: ${need_pkgs[*]}")
    elif [[ $(id -u) == 0 ]]; then
        log "installing ${need_pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq "${need_pkgs[@]}" >/dev/null; }
    else
        missing+=("debian packages (run as root: apt-get install ${need_pkgs[*]})")
    fi
fi

# --- PostgreSQL ------------------------------------------------------------------------------
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if [[ $CHECK_ONLY == 0 ]] && ls /etc/postgresql >/dev/null 2>&1; then
        log "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
    fi
    pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null \
        || missing+=("PostgreSQL on 127.0.0.1:5432 (install: apt-get install postgresql; trust auth for user postgres)")
fi

# --- Redis -----------------------------------------------------------------------------------
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    if [[ $CHECK_ONLY == 0 ]] && command -v redis-server >/dev/null 2>&1; then
        log "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no >/dev/null
        for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.2; done
    fi
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 \
        || missing+=("Redis on 127.0.0.1:6379 (install: apt-get install redis-server)")
fi

# --- ONNX Runtime ----------------------------------------------------------------------------
if [[ $CHECK_ONLY == 0 ]]; then
    scripts/setup-onnxruntime.sh >/dev/null || missing+=("ONNX Runtime library (scripts/setup-onnxruntime.sh failed)")
elif [[ ! -f "${TFESI_CACHE_DIR:-$HOME/.cache/tfesi}/onnxruntime/1.31.1/libonnxruntime.so.1.31.1" ]]; then
    missing+=("ONNX Runtime library (run scripts/setup-onnxruntime.sh)")
fi

# --- Python reference tools ------------------------------------------------------------------
# Every requirements.txt under services/ and bench/ (the benchmarks' baselines and plots) goes
# into one virtual environment, .venv, with the Python client (clients/python, editable) and its
# test tools. The Rust tests find it at .venv/bin/python; a stamp file skips pip when nothing
# changed.
mapfile -t req_files < <(find services bench -name requirements.txt -not -path '*/target/*' | sort)
client_files=(clients/python/pyproject.toml clients/python/requirements-dev.txt)
if [[ ${#req_files[@]} -gt 0 ]]; then
    stamp=".venv/.requirements.sha256"
    want="$(cat "${req_files[@]}" "${client_files[@]}" | sha256sum | cut -d' ' -f1)"
    if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
        if [[ $CHECK_ONLY == 1 ]]; then
            missing+=("python tools in .venv (run scripts/setup.sh)")
        else
            log "installing python tools into .venv from ${req_files[*]}"
            [[ -x .venv/bin/python ]] || python3 -m venv .venv
            args=()
            for f in "${req_files[@]}"; do args+=(-r "$f"); done
            args+=(-e clients/python -r clients/python/requirements-dev.txt)
            .venv/bin/pip install --quiet --disable-pip-version-check "${args[@]}" >&2
            echo "$want" > "$stamp"
        fi
    fi
fi

if [[ ${#missing[@]} -gt 0 ]]; then
    for m in "${missing[@]}"; do log "missing: $m"; done
    exit 1
fi
log "ready"
