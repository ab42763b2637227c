-- keyward schema 8: what a key is allowed beyond its scopes, and how it
-- was used. Rate limits and credits are per key; credits are spent by an
-- atomic decrement in this table, so no replica can over-spend them.

-- Reversible, unlike revocation: a disabled key answers DISABLED.
ALTER TABLE api_keys ADD COLUMN enabled BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1));
-- The customer's own data about the key: a JSON object of at most 4 KiB.
ALTER TABLE api_keys ADD COLUMN meta TEXT NOT NULL DEFAULT '{}' CHECK (length(meta) <= 4096);
-- The customer's id for the key's owner.
ALTER TABLE api_keys ADD COLUMN external_id TEXT CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 255);
-- JSON array of {name, limit, duration_ms}: named fixed-window limits.
ALTER TABLE api_keys ADD COLUMN ratelimits TEXT NOT NULL DEFAULT '[]';
-- NULL: unlimited. Otherwise what is left, and how it refills (the
-- remaining count is set back to the amount at each interval boundary,
-- the first verify after it doing so in the same statement that spends).
ALTER TABLE api_keys ADD COLUMN credits_remaining BIGINT CHECK (credits_remaining IS NULL OR credits_remaining >= 0);
ALTER TABLE api_keys ADD COLUMN refill_interval TEXT CHECK (refill_interval IS NULL OR refill_interval IN ('daily', 'monthly'));
ALTER TABLE api_keys ADD COLUMN refill_amount BIGINT CHECK (refill_amount IS NULL OR refill_amount >= 0);
ALTER TABLE api_keys ADD COLUMN refilled_at BIGINT;
-- Keys brought from another system: found by a fingerprint of the SHA-256
-- of their token, which keyward never saw.
ALTER TABLE api_keys ADD COLUMN imported BIGINT NOT NULL DEFAULT 0 CHECK (imported IN (0, 1));

-- Verifications per key, per hour and per outcome, flushed in batches.
CREATE TABLE key_verifications (
    key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    -- hours since the Unix epoch, UTC
    hour   BIGINT NOT NULL,
    code   TEXT NOT NULL CHECK (length(code) BETWEEN 1 AND 32),
    count  BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (key_id, hour, code)
);

-- Blocks of a rate limit's window handed to replicas: a replica serves
-- what it was handed from memory, so the window is never over-admitted.
CREATE TABLE ratelimit_leases (
    key_id       TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    window_start BIGINT NOT NULL,
    leased       BIGINT NOT NULL CHECK (leased >= 0),
    PRIMARY KEY (key_id, name)
);

-- A deleted service account keeps its row, renamed, so the keys it owned
-- (revoked with it) still say whose they were; its name is free again.
ALTER TABLE service_accounts ADD COLUMN deleted_at BIGINT;

-- Expiry notices already sent: one per key and lead time (e.g. 7 and 1
-- days before), so every replica and every restart sends each once.
CREATE TABLE expiry_notices (
    key_id  TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    days    BIGINT NOT NULL CHECK (days >= 1),
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, days)
);
