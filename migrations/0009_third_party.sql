-- keyward schema 9: tokens of other issuers (GitHub, GitLab, Slack, ...)
-- found by any source, revoked at their issuer's public endpoint when the
-- deployment's policy says so, and the deployment's own alert channels.

-- One incident per third-party token, however often seen. Like
-- `incidents`, it holds the token only as an HMAC and its last four.
CREATE TABLE third_party_incidents (
    id              TEXT PRIMARY KEY,
    -- HMAC-SHA256(pepper, token), hex
    fingerprint     TEXT NOT NULL UNIQUE CHECK (length(fingerprint) = 64),
    rule_id         TEXT NOT NULL CHECK (length(rule_id) BETWEEN 1 AND 128),
    family          TEXT NOT NULL CHECK (length(family) BETWEEN 1 AND 128),
    -- who can revoke it ('' when no issuer publishes a way)
    issuer          TEXT NOT NULL DEFAULT '' CHECK (length(issuer) <= 32),
    display_prefix  TEXT NOT NULL CHECK (length(display_prefix) <= 64),
    last4           TEXT NOT NULL CHECK (length(last4) <= 4),
    -- pending: a revocation is queued; revoked: the issuer confirmed it;
    -- refused: the issuer does not know the token (or it was already dead);
    -- not_supported: no revocation will be tried (no public endpoint, the
    -- deployment's policy is report, a publishable or test token);
    -- failed: the last attempt failed (retrying while next_attempt_at is set)
    status          TEXT NOT NULL CHECK (status IN ('pending', 'revoked', 'refused', 'not_supported', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    status_at       BIGINT NOT NULL,
    next_attempt_at BIGINT,
    reason          TEXT NOT NULL DEFAULT '' CHECK (length(reason) <= 1000),
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
    -- the security team is told once per incident
    alerted_at      BIGINT,
    CHECK (last_seen >= first_seen)
);
CREATE INDEX third_party_incidents_seen ON third_party_incidents (last_seen);
CREATE INDEX third_party_incidents_status ON third_party_incidents (status);

CREATE TABLE third_party_sightings (
    incident_id TEXT NOT NULL REFERENCES third_party_incidents (id) ON DELETE CASCADE,
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

-- A token waiting for its issuer to revoke it: sealed with an AEAD key
-- derived from the pepper (ChaCha20-Poly1305, the incident id as
-- associated data), and deleted in the transaction that ends its job.
CREATE TABLE held_tokens (
    incident_id TEXT PRIMARY KEY REFERENCES third_party_incidents (id) ON DELETE CASCADE,
    -- hex of the 12-byte nonce and of the ciphertext with its tag
    nonce       TEXT NOT NULL CHECK (length(nonce) = 24),
    sealed      TEXT NOT NULL CHECK (length(sealed) BETWEEN 34 AND 16384),
    created_at  BIGINT NOT NULL
);

-- The deployment's own alert channels, for what belongs to no project
-- (third-party tokens): one row.
CREATE TABLE deployment_alert_settings (
    id                BIGINT PRIMARY KEY CHECK (id = 1),
    webhook_url       TEXT NOT NULL DEFAULT '',
    webhook_secret    TEXT NOT NULL DEFAULT '',
    slack_webhook_url TEXT NOT NULL DEFAULT '',
    -- email the deployment's owners
    email             BIGINT NOT NULL DEFAULT 0 CHECK (email IN (0, 1)),
    updated_at        BIGINT NOT NULL
);
