#!/usr/bin/env bash
# The whole test suite: prepares the machine (scripts/setup.sh), builds the binaries the
# end-to-end tests start, and runs every test of the workspace with cargo-nextest when it is
# installed, else cargo test. Extra arguments go to the test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Compile-checked queries use the committed .sqlx/ data; tests that need a database
# (#[sqlx::test]) create their own from DATABASE_URL.
export SQLX_OFFLINE=true
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# Every target the tests need at once, with the dependencies' dev features (what nextest builds):
# building only --bins first compiled about 80 dependencies a second time for the tests, with
# other features. --all-targets also compiles the benches (in the test profile, not release), so a
# broken bench fails here.
cargo build --workspace --all-targets --locked
# The Python client's tests (unit, generated-code freshness, and integration against the
# binaries just built).
TFESI_BIN_DIR="${CARGO_TARGET_DIR:-target}/debug" .venv/bin/python -m pytest clients/python/tests -q
# The retraining job's tests that need no PyTorch (the others skip and say so; scripts/setup-training.sh
# installs PyTorch for them).
.venv/bin/python -m pytest training/tests -q
if command -v cargo-nextest >/dev/null 2>&1; then
    exec cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    exec cargo test --workspace --locked --no-fail-fast "$@"
fi
