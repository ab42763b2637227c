-- keyward schema 2: the leak response. Incidents (one per leaked token) and
-- the places each was seen, per-project alert settings, and the durable job
-- queue that alert delivery (and later the sources) run on.

CREATE TABLE incidents (
    id              TEXT PRIMARY KEY,
    -- NULL when a token with a valid checksum matches no stored key
    key_id          TEXT REFERENCES api_keys (id) ON DELETE CASCADE,
    project_id      TEXT REFERENCES projects (id) ON DELETE CASCADE,
    -- HMAC of the leaked token: one incident per token, however often seen
    fingerprint     TEXT NOT NULL UNIQUE CHECK (length(fingerprint) = 64),
    display_prefix  TEXT NOT NULL,
    last4           TEXT NOT NULL CHECK (length(last4) = 4),
    -- what the response did the first time
    action          TEXT NOT NULL CHECK (action IN ('revoked', 'notified', 'already_revoked', 'publishable', 'unknown')),
    -- where it was first seen
    source_kind     TEXT NOT NULL CHECK (length(source_kind) BETWEEN 1 AND 64),
    repository      TEXT NOT NULL DEFAULT '',
    commit_sha      TEXT NOT NULL DEFAULT '',
    path            TEXT NOT NULL DEFAULT '',
    line            BIGINT,
    url             TEXT NOT NULL DEFAULT '',
    first_seen      BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    seen_count      BIGINT NOT NULL DEFAULT 1 CHECK (seen_count >= 1),
    last_alerted_at BIGINT,
    CHECK (last_seen >= first_seen)
);
CREATE INDEX incidents_project_seen ON incidents (project_id, last_seen);

-- Every distinct place an incident's token was seen.
CREATE TABLE sightings (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    -- identity of the place: the URL, or repository@commit:path:line
    place       TEXT NOT NULL CHECK (length(place) BETWEEN 1 AND 2048),
    source_kind TEXT NOT NULL,
    repository  TEXT NOT NULL DEFAULT '',
    commit_sha  TEXT NOT NULL DEFAULT '',
    path        TEXT NOT NULL DEFAULT '',
    line        BIGINT,
    url         TEXT NOT NULL DEFAULT '',
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    seen_count  BIGINT NOT NULL DEFAULT 1 CHECK (seen_count >= 1),
    PRIMARY KEY (incident_id, place)
);

CREATE TABLE alert_settings (
    project_id        TEXT PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    -- signed JSON webhook; the secret signs, it is not an API key
    webhook_url       TEXT NOT NULL DEFAULT '',
    webhook_secret    TEXT NOT NULL DEFAULT '',
    slack_webhook_url TEXT NOT NULL DEFAULT '',
    -- email the key's owner and the project's owners and admins
    email             BIGINT NOT NULL DEFAULT 1 CHECK (email IN (0, 1)),
    updated_at        BIGINT NOT NULL
);

-- Claimed atomically (FOR UPDATE SKIP LOCKED on PostgreSQL) under a lease:
-- a claim whose worker died is taken over once locked_until has passed.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempts     BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts BIGINT NOT NULL CHECK (max_attempts >= 1),
    run_at       BIGINT NOT NULL,
    locked_until BIGINT,
    locked_by    TEXT,
    last_error   TEXT NOT NULL DEFAULT '',
    -- one job per logical piece of work (delivery id, alert per incident and channel)
    dedupe_key   TEXT UNIQUE,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX jobs_ready ON jobs (state, run_at);
