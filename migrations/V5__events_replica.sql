-- Several `triagent serve` replicas may share this database. Each numbers its bus events itself
-- (the SSE ids a subscriber resumes from with Last-Event-ID), independently of the others, so a
-- bus number means something only together with the replica that gave it: two replicas both
-- have an event 1. `replica` names the process that numbered the event (settings
-- `server.replica`, by default "host name:port"); a replica continues and resumes its own
-- numbering only (store::ReportStore::next_bus_seq, events_by_bus_seq). The store's own `seq`
-- stays one global sequence.
--
-- Rows kept before this migration came from a single writer: they keep '' (the column's default,
-- which also takes the events of a replica still running the previous version during a rolling
-- upgrade). Adding a column with a constant default rewrites no rows.
ALTER TABLE events ADD COLUMN replica text NOT NULL DEFAULT '';

-- Resuming and numbering look up one replica's events by bus number; the V4 index over bus
-- numbers alone would mix every replica's together. Built in the migration's transaction, so
-- writes to `events` wait for it (each replica spools them if it takes longer than
-- database.timeout_ms).
DROP INDEX events_bus_seq;
CREATE INDEX events_replica_bus_seq ON events (replica, bus_seq);
