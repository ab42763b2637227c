-- keyward schema 7: the authorization model's people and the webhook
-- replay guard.
--
-- Deployment owners may act at deployment level (create projects, read
-- the leak sources). The user `keyward init` made is one; on a database
-- that predates this column, that is the earliest user.
ALTER TABLE users ADD COLUMN deployment_owner BIGINT NOT NULL DEFAULT 0
    CHECK (deployment_owner IN (0, 1));
UPDATE users SET deployment_owner = 1
    WHERE id = (SELECT id FROM users ORDER BY created_at, id LIMIT 1);

-- A one-time link that lets a new person choose their own password: an
-- admin who adds someone never types (or learns) that person's password.
-- Only the SHA-256 of the link's token is stored.
CREATE TABLE invitations (
    token_hash TEXT PRIMARY KEY CHECK (length(token_hash) = 64),
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- the audit name of whoever invited
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX invitations_user ON invitations (user_id);

-- Webhook bodies already accepted, by content, so a signed push replayed
-- under a new delivery id is answered `duplicate` and not read again. A
-- row older than the replay window may be refreshed by a new delivery.
CREATE TABLE webhook_receipts (
    -- 'github:' or 'gitlab:' + SHA-256 of repository, before, after and body
    content_key TEXT PRIMARY KEY CHECK (length(content_key) BETWEEN 8 AND 128),
    received_at BIGINT NOT NULL
);
CREATE INDEX webhook_receipts_received ON webhook_receipts (received_at);
