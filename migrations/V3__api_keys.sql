-- API keys and the audit log of their use and of admin actions. Only a hash of each key is
-- kept; the key itself is shown once, when it is created.
CREATE TABLE api_keys (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    hash        text        NOT NULL UNIQUE,
    scopes      text[]      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    -- NULL for actions not done with a key (the `triagent keys` commands).
    api_key_id  uuid        REFERENCES api_keys (id),
    -- key_used, key_created, key_revoked, ...
    action      text        NOT NULL,
    -- Ids, routes, status codes; never a key, a hash or a person's text.
    detail      jsonb       NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_key ON audit_log (api_key_id, at);
CREATE INDEX audit_log_at ON audit_log (at);
