-- Registry events are read by polling instead of being announced with pg_notify.
--
-- NOTIFY takes a database-wide lock before its transaction commits and holds it until the
-- commit has been flushed, so every transaction that notifies commits alone, one WAL flush
-- each: pgbench on this project's machine made 2,437 single-row inserts per second without a
-- notify and 986 with one. Every clinical write of the registry appends an event, so the trigger
-- capped the registry's write rate near 1/fsync whatever else was done.
--
-- Instead, each event records the transaction that wrote it (`tx`), and the registry's event hub
-- polls for the events of transactions that have ended since its last poll: those whose `tx` is
-- below the current snapshot's xmin (every transaction below it has committed or aborted, so
-- its rows are visible or gone for good) and at or above the previous poll's xmin. Every
-- committed event is read exactly once, in any commit order, and a hub that loses its
-- connection resumes where it stopped instead of missing what happened meanwhile. Events reach
-- watchers one poll interval after the oldest write transaction still running when they
-- committed has ended.
DROP TRIGGER events_announce ON registry.events;
DROP FUNCTION registry.announce_event();

-- Existing rows get the migration's own transaction id: they are older than any hub.
ALTER TABLE registry.events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_tx_idx ON registry.events (tx);
