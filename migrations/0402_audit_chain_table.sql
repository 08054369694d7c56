-- Audit records are chained in a table of their own (`audit.chain`), not by updating them.
--
-- Before: the chainer (migration 0401) updated each committed record to set seq, prev_hash and
-- hash. That wrote every record twice: the update could not be a HOT update (seq and hash are
-- indexed), so it wrote a second heap tuple, an entry in each of the record's six indexes again,
-- and ran a PL/pgSQL trigger per row. bench/audit-chain/run.sh (pgbench, the registry's
-- RecordFollowUp statement with two audit records per transaction, 8 clients, medians of 5
-- alternating rounds, session 13): 3,561 tps unchained, 2,709 chained by update, 3,214 chained
-- into a separate table.
--
-- Now: `audit.log` is strictly append-only again (no update at all), and each record carries
-- the transaction that wrote it (`tx`). The chainer (tfesi_platform::audit::chain_pending)
-- appends one `audit.chain` row per committed record under the advisory lock: its position
-- (`seq`), the record's id, the previous chain row's hash and its own. It finds what to chain
-- by transaction: every record whose transaction ended before the oldest one still running
-- (the snapshot's xmin) and after the transaction of the last record chained. A record written
-- by a transaction still running waits for a later pass; a record of a transaction that rolled
-- back was never visible; so every committed record is chained exactly once.
--
-- Records chained before this migration keep their place: their chain rows are copied from
-- audit.log, and their `tx` stays NULL. Records not yet chained get this migration's
-- transaction id, so the next chainer pass takes them.

CREATE TABLE audit.chain (
    seq        bigint PRIMARY KEY CHECK (seq >= 1),
    id         bigint NOT NULL UNIQUE REFERENCES audit.log (id),
    prev_hash  bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash       bytea NOT NULL CHECK (octet_length(hash) = 32)
);
COMMENT ON TABLE audit.chain IS
    'the hash chain over audit.log: one row per committed record, in chain order (seq); append-only';

INSERT INTO audit.chain (seq, id, prev_hash, hash)
    SELECT seq, id, prev_hash, hash FROM audit.log WHERE seq IS NOT NULL;

DROP TRIGGER log_update_only_to_chain ON audit.log;
DROP FUNCTION audit.log_update_is_chaining_only();

ALTER TABLE audit.log ADD COLUMN tx xid8;
UPDATE audit.log SET tx = pg_current_xact_id() WHERE seq IS NULL;
ALTER TABLE audit.log ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
COMMENT ON COLUMN audit.log.tx IS
    'the transaction that wrote the record (NULL for records chained before migration 0402)';
-- The chainer's work list: records after the last chained transaction, in chain order.
CREATE INDEX log_tx ON audit.log (tx, id);

DROP INDEX audit.log_unchained;
ALTER TABLE audit.log DROP CONSTRAINT log_chained_together;
ALTER TABLE audit.log DROP CONSTRAINT log_seq_unique;
ALTER TABLE audit.log DROP CONSTRAINT log_hash_key;
ALTER TABLE audit.log DROP COLUMN seq, DROP COLUMN prev_hash, DROP COLUMN hash;

CREATE TRIGGER log_no_update BEFORE UPDATE ON audit.log
    FOR EACH ROW EXECUTE FUNCTION audit.log_is_append_only();

-- One refusal guards both tables; it now names the table it was fired on.
CREATE OR REPLACE FUNCTION audit.log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only (% refused)', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP;
END;
$$;
CREATE TRIGGER chain_no_update_or_delete BEFORE UPDATE OR DELETE ON audit.chain
    FOR EACH ROW EXECUTE FUNCTION audit.log_is_append_only();
CREATE TRIGGER chain_no_truncate BEFORE TRUNCATE ON audit.chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit.log_is_append_only();
