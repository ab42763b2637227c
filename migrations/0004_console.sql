-- keyward schema 4: the web console. A person signs in with a password
-- (argon2id, in users.password_hash since schema 1) and gets a session. The
-- cookie holds a random token; only its SHA-256 is stored here, so a copy
-- of the database hands out no sessions.

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY CHECK (length(token_hash) = 64),
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the token every state-changing form of this session must carry
    csrf       TEXT NOT NULL CHECK (length(csrf) >= 32),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX sessions_user ON sessions (user_id);
