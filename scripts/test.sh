#!/usr/bin/env bash
# The whole test suite: prepares the machine (scripts/setup.sh), builds the binaries the
# end-to-end tests start, and runs every test of the workspace with cargo-nextest when it is
# installed, else cargo test. Extra arguments go to the test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --bins --locked
if command -v cargo-nextest >/dev/null 2>&1; then
    exec cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    exec cargo test --workspace --locked --no-fail-fast "$@"
fi
