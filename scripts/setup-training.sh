#!/usr/bin/env bash
# Installs the reference retraining job's Python environment (training/): PyTorch, ONNX,
# ONNX Runtime, scikit-learn, pyarrow and the Python client, into .venv-training. Idempotent: a
# stamp of the requirement files skips pip when nothing changed.
#
#   scripts/setup-training.sh           install or update .venv-training
#   scripts/setup-training.sh --check   only say whether it is installed and current (exit 1 if not)
#
# Kept apart from scripts/setup.sh and .venv on purpose: the Linux torch wheel on PyPI (the only
# index reachable here) is the CUDA build and pulls the nvidia-* CUDA libraries: about 3.2 GB
# downloaded and 5.9 GB installed (training/README.md, "Install"). The Rust test suite and CI
# never need it. The venv directory holds a `.gitignore` of `*`, so git ignores it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TFESI_TRAINING_VENV:-.venv-training}"
STAMP="$VENV/.requirements.sha256"
log() { echo "setup-training: $*" >&2; }

want="$(cat training/requirements.txt clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && "$(cat "$STAMP" 2>/dev/null)" == "$want" ]]; then
    log "$VENV is current ($(du -sh "$VENV" 2>/dev/null | cut -f1))"
    exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
    log "missing or stale: $VENV (run scripts/setup-training.sh)"
    exit 1
fi
command -v python3 >/dev/null || { log "python3 (>= 3.11) is required"; exit 1; }
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { log "python3 >= 3.11 is required"; exit 1; }
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
fi
printf '*\n' > "$VENV/.gitignore"
log "installing training/requirements.txt and clients/python into $VENV (about 3.2 GB to download)"
started=$SECONDS
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r training/requirements.txt -e clients/python >&2
echo "$want" > "$STAMP"
log "ready in $((SECONDS - started)) s: $VENV ($(du -sh "$VENV" | cut -f1)); test with $VENV/bin/python -m pytest -q training/tests"
