#!/usr/bin/env bash
# The development stack in one command: prepares the machine (scripts/setup.sh), builds, and
# runs `tfesi dev` (all four services in one process against the local Postgres and Redis).
# Extra arguments go to `tfesi dev` (see `tfesi dev --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SQLX_OFFLINE=true
# The same DATABASE_URL as scripts/test.sh: sqlx rebuilds its macros when it changes.
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
exec cargo run --locked -p tfesi-cli --bin tfesi -- dev "$@"
