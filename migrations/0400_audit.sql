-- The platform's audit log: one append-only, hash-chained table that every service writes in
-- the same transaction as the work it records (see services/platform/src/audit.rs).
--
-- Each record's hash is SHA-256 over the previous record's hash and the record's own fields
-- (length-prefixed, so no two records encode alike); `tfesi audit verify` recomputes the chain.
-- Appends are serialized by a transaction-scoped advisory lock, so ids follow chain order.
-- Rows can be neither updated, deleted nor truncated: the triggers below refuse, and an
-- edit made around them (by a superuser disabling triggers) breaks the chain where it happened.
CREATE SCHEMA IF NOT EXISTS audit;

CREATE TABLE audit.log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    service    text NOT NULL,
    actor      text NOT NULL,
    role       text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL,
    outcome    text NOT NULL,
    purpose    text,
    prev_hash  bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash       bytea NOT NULL UNIQUE CHECK (octet_length(hash) = 32)
);
CREATE INDEX log_at ON audit.log (at);
CREATE INDEX log_actor ON audit.log (actor, at);
CREATE INDEX log_target ON audit.log (target, at);

CREATE FUNCTION audit.log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit.log is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit.log
    FOR EACH ROW EXECUTE FUNCTION audit.log_is_append_only();
CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON audit.log
    FOR EACH STATEMENT EXECUTE FUNCTION audit.log_is_append_only();

-- ingest.audit (LookupIds, ResolvePatient, GetSeries) is superseded by audit.log; its earlier
-- rows stay where they are, unchained, and nothing writes there any more.
COMMENT ON TABLE ingest.audit IS 'superseded by audit.log (migration 0400); kept read-only for earlier records';
