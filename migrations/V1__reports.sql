-- Triage reports: the full answer as sent, plus the columns reports are found by.
CREATE TABLE reports (
    id            uuid        PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    level         text        NOT NULL CHECK (level IN
                      ('emergency_ambulance', 'emergency', 'consultation_24', 'consultation', 'self_care')),
    -- ICD-10 code of the most probable condition, when one was confident enough.
    top_condition text,
    degraded      boolean     NOT NULL,
    -- The API key that asked. No foreign key: keys are revoked, never deleted, and a report
    -- must never be refused for a key's sake.
    api_key_id    uuid,
    body          jsonb       NOT NULL,
    -- What the person wrote: only filled when database.store_free_text is on, and kept in its
    -- own column so it can be purged (UPDATE reports SET free_text = NULL ...) without
    -- touching the rest.
    free_text     text,
    stored_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX reports_created_at ON reports (created_at);
CREATE INDEX reports_level ON reports (level, created_at);
CREATE INDEX reports_top_condition ON reports (top_condition, created_at) WHERE top_condition IS NOT NULL;
CREATE INDEX reports_degraded ON reports (created_at) WHERE degraded;
CREATE INDEX reports_api_key ON reports (api_key_id, created_at) WHERE api_key_id IS NOT NULL;
