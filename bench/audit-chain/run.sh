#!/usr/bin/env bash
# What chaining the audit log costs Postgres, with no service in the way: pgbench running the
# registry's RecordFollowUp statement as the follow-ups bench mirrors it (PGBENCH_SHAPED of
# services/registry/benches/followups.rs, two audit records per transaction) against an audit
# table laid out three ways, in alternating rounds on the same server:
#   unchained  audit.log's columns and indexes, nothing chains (the floor);
#   update     migration 0401: seq/prev_hash/hash columns with their unique indexes and the
#              unchained partial index, and a chainer that UPDATEs records every 200 ms;
#   table      migration 0402: a `tx` column and index, and a chainer that INSERTs one
#              audit.chain row per record every 200 ms.
# The chainers hash in SQL (the services hash in Rust); the rows they write are the same shape.
# Usage: bench/audit-chain/run.sh [rounds (3)] [transactions per client (1000)]
# Knobs: PG_URL_BASE (postgres://postgres@127.0.0.1:5432), PGBENCH (newest installed).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-3}"
per_client="${2:-1000}"
base="${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
db="tfesi_bench_audit_chain"
pgbench="${PGBENCH:-$(ls -d /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -1)}"
work="$(mktemp -d)"
chainer=""
cleanup() {
    [[ -n "$chainer" ]] && kill "$chainer" 2>/dev/null || true
    psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# The follow-ups bench's scratch schema and statement, taken from its source (one copy of each).
python3 - "$work" <<'PY'
import re, sys
src = open("services/registry/benches/followups.rs").read()
grab = lambda name: re.search(r'const %s: &str = r"(.*?)";\n' % name, src, re.S).group(1)
open(sys.argv[1] + "/schema.sql", "w").write(grab("BASELINE_SCHEMA"))
shaped = grab("PGBENCH_SHAPED")
old = "bench_pgbench.audit (action, target) SELECT kind, 'episode:' || episode_id FROM events"
assert old in shaped, "PGBENCH_SHAPED changed: update this script"
for variant in ("unchained", "update", "table"):
    new = ("bench_pgbench.audit_%s (at, service, actor, role, action, target, outcome) "
           "SELECT now(), 'registry', 'bench-nurse', 'nurse', kind, 'episode:' || episode_id, 'ok' FROM events" % variant)
    open("%s/%s.sql" % (sys.argv[1], variant), "w").write(shaped.replace(old, new))
PY

psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
psql -q -v ON_ERROR_STOP=1 "$base/$db" -f "$work/schema.sql"
psql -q -v ON_ERROR_STOP=1 "$base/$db" <<'SQL'
CREATE FUNCTION bench_pgbench.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'append-only'; END; $$;
CREATE FUNCTION bench_pgbench.chaining_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.hash IS NULL AND NEW.hash IS NOT NULL AND NEW.id = OLD.id AND NEW.at = OLD.at
       AND NEW.service = OLD.service AND NEW.actor = OLD.actor AND NEW.role = OLD.role
       AND NEW.action = OLD.action AND NEW.target = OLD.target AND NEW.outcome = OLD.outcome
       AND NEW.purpose IS NOT DISTINCT FROM OLD.purpose THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'append-only';
END; $$;
CREATE TABLE bench_pgbench.audit_unchained (
    id bigserial PRIMARY KEY, at timestamptz NOT NULL, service text NOT NULL, actor text NOT NULL,
    role text NOT NULL, action text NOT NULL, target text NOT NULL, outcome text NOT NULL, purpose text);
CREATE INDEX ON bench_pgbench.audit_unchained (at);
CREATE INDEX ON bench_pgbench.audit_unchained (actor, at);
CREATE INDEX ON bench_pgbench.audit_unchained (target, at);
CREATE TABLE bench_pgbench.audit_update (LIKE bench_pgbench.audit_unchained INCLUDING ALL,
    prev_hash bytea CHECK (octet_length(prev_hash) = 32), hash bytea UNIQUE CHECK (octet_length(hash) = 32),
    seq bigint UNIQUE, CHECK ((seq IS NULL) = (hash IS NULL) AND (hash IS NULL) = (prev_hash IS NULL)));
CREATE INDEX ON bench_pgbench.audit_update (id) WHERE hash IS NULL;
CREATE TRIGGER chaining_only BEFORE UPDATE ON bench_pgbench.audit_update
    FOR EACH ROW EXECUTE FUNCTION bench_pgbench.chaining_only();
CREATE TABLE bench_pgbench.audit_table (LIKE bench_pgbench.audit_unchained INCLUDING ALL,
    tx xid8 DEFAULT pg_current_xact_id());
CREATE INDEX ON bench_pgbench.audit_table (tx, id);
CREATE TRIGGER no_update BEFORE UPDATE ON bench_pgbench.audit_table
    FOR EACH ROW EXECUTE FUNCTION bench_pgbench.refuse();
CREATE TABLE bench_pgbench.chain (seq bigint PRIMARY KEY, id bigint NOT NULL UNIQUE
    REFERENCES bench_pgbench.audit_table (id), prev_hash bytea NOT NULL, hash bytea NOT NULL);
CREATE SEQUENCE bench_pgbench.chain_seq;
SQL

chain_sql() {
    case "$1" in
        update) echo "UPDATE bench_pgbench.audit_update SET seq = nextval('bench_pgbench.chain_seq'),
            prev_hash = sha256(int8send(id)), hash = sha256(int8send(id) || '\x01'::bytea)
            WHERE id IN (SELECT id FROM bench_pgbench.audit_update WHERE hash IS NULL ORDER BY id LIMIT 2000)" ;;
        table) echo "INSERT INTO bench_pgbench.chain SELECT nextval('bench_pgbench.chain_seq'), id,
            sha256(int8send(id)), sha256(int8send(id) || '\x01'::bytea) FROM bench_pgbench.audit_table
            WHERE tx > coalesce((SELECT a.tx FROM bench_pgbench.chain c JOIN bench_pgbench.audit_table a USING (id)
                ORDER BY c.seq DESC LIMIT 1), '0'::xid8)
              AND tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY tx, id LIMIT 2000" ;;
    esac
}

echo "pgbench: $("$pgbench" --version); 8 clients, 2 threads, $per_client transactions each, $rounds rounds"
declare -A tps
for round in $(seq 1 "$rounds"); do
    for variant in unchained update table; do
        sql="$(chain_sql "$variant")"
        if [[ -n "$sql" ]]; then
            ( while true; do psql -q "$base/$db" -c "$sql" >/dev/null; sleep 0.2; done ) &
            chainer=$!
        fi
        rate="$("$pgbench" -n -c 8 -j 2 -t "$per_client" -f "$work/$variant.sql" "$base/$db" 2>&1 \
            | sed -n 's/^tps = \([0-9.]*\).*/\1/p')"
        if [[ -n "$chainer" ]]; then kill "$chainer"; wait "$chainer" 2>/dev/null || true; chainer=""; fi
        [[ -n "$rate" ]] || { echo "pgbench failed for $variant" >&2; exit 1; }
        tps[$variant]+="$rate "
        echo "round $round  $variant  $rate tps"
    done
done
echo "median tps:"
for variant in unchained update table; do
    printf '  %-10s %s\n' "$variant" "$(tr ' ' '\n' <<<"${tps[$variant]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
done
