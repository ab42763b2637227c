-- keyward schema 1: projects, people, keys, entitlements, audit, usage.
--
-- One file serves SQLite and PostgreSQL: only types and syntax both accept.
-- Times are Unix milliseconds in BIGINT; integers are BIGINT so one decoder
-- reads both backends. A plaintext token is never stored: a key is found by
-- its HMAC-SHA256 fingerprint and shown as display_prefix + last4.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- what the leak response does with a leaked secret key
    leak_policy TEXT NOT NULL DEFAULT 'revoke' CHECK (leak_policy IN ('revoke', 'notify_only')),
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 320),
    name          TEXT NOT NULL DEFAULT '',
    -- argon2id PHC string; NULL until the user sets a password
    password_hash TEXT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE memberships (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

-- Team keys belong to a service account rather than a person.
CREATE TABLE service_accounts (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    role       TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member', 'viewer')),
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    description    TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    kind           TEXT NOT NULL CHECK (kind IN ('secret', 'publishable')),
    mode           TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    -- JSON array of scopes, validated against the catalog on the way in
    scopes         TEXT NOT NULL,
    owner_user_id  TEXT REFERENCES users (id),
    owner_service_account_id TEXT REFERENCES service_accounts (id),
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT,
    expires_at     BIGINT,
    -- set in the future while a rotation overlap runs: the key dies then by itself
    revoked_at     BIGINT,
    revoke_reason  TEXT CHECK (revoke_reason IN ('manual', 'leaked', 'expired', 'rotated')),
    display_prefix TEXT NOT NULL,
    last4          TEXT NOT NULL CHECK (length(last4) = 4),
    fingerprint    TEXT NOT NULL UNIQUE CHECK (length(fingerprint) = 64),
    -- the project's default key: rotated, never revoked by people
    is_default     BIGINT NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    rotated_from   TEXT REFERENCES api_keys (id),
    CHECK (owner_user_id IS NULL OR owner_service_account_id IS NULL),
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);
-- A name is unique among the project's keys that are not revoked or being
-- rotated out, so a rotated key's successor can keep its name.
CREATE UNIQUE INDEX api_keys_project_name ON api_keys (project_id, name) WHERE revoked_at IS NULL;
CREATE INDEX api_keys_project_created ON api_keys (project_id, created_at);

-- Owned by the billing system through the API; no row means enabled.
CREATE TABLE entitlements (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    product    TEXT NOT NULL CHECK (length(product) BETWEEN 1 AND 64),
    state      TEXT NOT NULL CHECK (state IN ('enabled', 'trial', 'requires_upgrade')),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, product)
);

-- Tamper-evident log: hash = SHA-256(prev_hash || canonical event JSON).
CREATE TABLE audit_events (
    seq        BIGINT PRIMARY KEY CHECK (seq >= 1),
    id         TEXT NOT NULL UNIQUE,
    project_id TEXT,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT '',
    -- JSON object: mode, scopes, reason... never a secret
    data       TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    prev_hash  TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash       TEXT NOT NULL UNIQUE CHECK (length(hash) = 64)
);
CREATE INDEX audit_events_project_seq ON audit_events (project_id, seq);

-- The end of the chain. Appending updates this one row first, which
-- serialises concurrent appenders on PostgreSQL (row lock) as on SQLite.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL CHECK (length(hash) = 64)
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Verify counts, flushed in batches rather than written per request.
CREATE TABLE key_usage (
    key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    -- days since the Unix epoch, UTC
    day    BIGINT NOT NULL,
    count  BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (key_id, day)
);
