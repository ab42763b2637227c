-- keyward schema 6: which pepper each key's fingerprint was made with, so
-- that a pepper rotation can tell when no active key needs the old one.
-- The id is a short hash of the pepper, never the pepper. '' marks rows
-- written before this column existed; `serve` labels them at start while
-- no previous pepper is configured.

ALTER TABLE api_keys ADD COLUMN pepper_id TEXT NOT NULL DEFAULT ''
    CHECK (pepper_id = '' OR length(pepper_id) = 16);
