-- Audit records are chained after their transaction commits, not inside it.
--
-- Before: every append took one advisory lock and held it until its transaction committed, so
-- every auditable request of every service committed one at a time, one WAL flush each (the
-- registry's follow-ups bench: 0.11 to 0.14 of plain pgbench). Now the request's transaction
-- inserts its record unchained (`hash` NULL), in the same transaction as the work it records,
-- so a record still exists exactly when the work was committed and a failed insert still fails
-- the request. A chainer (tfesi_platform::audit::chain_pending, run by every service that writes
-- the log, and by `tfesi audit verify` first) then gives each committed record, under the
-- advisory lock, its place in the chain (`seq`), `prev_hash` and `hash`. Chain order is `seq`;
-- `id` stays the insertion order. Records older than this migration keep seq = id.
--
-- The append-only triggers now allow exactly one update per record: chaining it, which sets
-- seq, prev_hash and hash where they were NULL and changes nothing else.
DROP TRIGGER log_no_update_or_delete ON audit.log;

ALTER TABLE audit.log ADD COLUMN seq bigint;
UPDATE audit.log SET seq = id;
ALTER TABLE audit.log ADD CONSTRAINT log_seq_unique UNIQUE (seq);
ALTER TABLE audit.log ALTER COLUMN prev_hash DROP NOT NULL;
ALTER TABLE audit.log ALTER COLUMN hash DROP NOT NULL;
ALTER TABLE audit.log ADD CONSTRAINT log_chained_together
    CHECK ((seq IS NULL) = (hash IS NULL) AND (hash IS NULL) = (prev_hash IS NULL));
-- The chainer's work list.
CREATE INDEX log_unchained ON audit.log (id) WHERE hash IS NULL;

CREATE FUNCTION audit.log_update_is_chaining_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.hash IS NULL AND NEW.hash IS NOT NULL
       AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.service = OLD.service
       AND NEW.actor = OLD.actor AND NEW.role = OLD.role AND NEW.action = OLD.action
       AND NEW.target = OLD.target AND NEW.outcome = OLD.outcome
       AND NEW.purpose IS NOT DISTINCT FROM OLD.purpose THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit.log is append-only (UPDATE refused: only chaining an unchained record is allowed)';
END;
$$;
CREATE TRIGGER log_update_only_to_chain BEFORE UPDATE ON audit.log
    FOR EACH ROW EXECUTE FUNCTION audit.log_update_is_chaining_only();
CREATE TRIGGER log_no_delete BEFORE DELETE ON audit.log
    FOR EACH ROW EXECUTE FUNCTION audit.log_is_append_only();
