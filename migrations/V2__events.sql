-- Diagnosis events, append-only, in one global sequence an event stream can resume from.
CREATE TABLE events (
    seq        bigserial   PRIMARY KEY,
    -- Given by the service when the event is first kept, so a replayed write is recognised.
    event_id   uuid        NOT NULL UNIQUE,
    -- NULL for events that belong to no report (circuit breaker changes).
    report_id  uuid,
    -- The in-process bus's number; restarts with each process, so it is not a key.
    bus_seq    bigint      NOT NULL,
    kind       text        NOT NULL,
    level      text,
    -- The whole event as the bus publishes it (ids, codes, levels, timings; never free text).
    payload    jsonb       NOT NULL,
    at         timestamptz NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_report ON events (report_id) WHERE report_id IS NOT NULL;
CREATE INDEX events_kind ON events (kind, seq);

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
