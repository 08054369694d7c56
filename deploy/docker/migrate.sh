#!/bin/sh
# One-shot database migration with the registry binary (every service embeds all of migrations/
# and applies it under Postgres' advisory lock before it serves). Starts tfesi-registry with
# migrations on, waits until its gRPC health says SERVING (migrations are done by then), then
# stops it with SIGTERM (graceful, exit 0). A dedicated `tfesi migrate` command is planned and
# will replace this script.
set -eu
ADDR="${TFESI_MIGRATE_HEALTH_ADDR:-127.0.0.1:50054}"
DEADLINE_S="${TFESI_MIGRATE_TIMEOUT_S:-300}"
export TFESI_REGISTRY__DATABASE__RUN_MIGRATIONS=true
export TFESI_REGISTRY__SERVER__LISTEN="${ADDR}"
tfesi-registry "$@" &
pid=$!
waited=0
until grpc_health_probe -addr="${ADDR}" -service=tfesi.registry.v1.Registry >/dev/null 2>&1; do
    if ! kill -0 "${pid}" 2>/dev/null; then
        wait "${pid}" && status=0 || status=$?
        echo "tfesi-migrate: tfesi-registry exited (status ${status}) before serving: migrations failed" >&2
        exit 1
    fi
    if [ "${waited}" -ge "${DEADLINE_S}" ]; then
        echo "tfesi-migrate: not serving after ${DEADLINE_S}s: giving up" >&2
        kill -TERM "${pid}" 2>/dev/null || true
        exit 1
    fi
    sleep 1
    waited=$((waited + 1))
done
echo "tfesi-migrate: migrations applied; stopping tfesi-registry" >&2
kill -TERM "${pid}"
wait "${pid}"
