-- keyward schema 3: the leak sources. Each source (a webhook endpoint, the
-- public event feed, a watched path, a scheduled repository) keeps one row:
-- its cursor, so a restart resumes where it stopped, and its health, which
-- the status API and /metrics report. Webhook deliveries need no table of
-- their own: each is a job whose dedupe key is the delivery id.

CREATE TABLE source_state (
    -- e.g. 'github-webhook', 'github-events', 'watch', 'schedule:/srv/repo'
    name          TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 512),
    kind          TEXT NOT NULL CHECK (kind IN ('github-webhook', 'gitlab-webhook', 'github-events', 'watch', 'schedule')),
    -- JSON owned by the source: the feed's last event id and ETag, a
    -- scheduled repository's scanned tips
    cursor        TEXT NOT NULL DEFAULT '{}',
    events        BIGINT NOT NULL DEFAULT 0 CHECK (events >= 0),
    errors        BIGINT NOT NULL DEFAULT 0 CHECK (errors >= 0),
    -- when the source last had something to read, and last read it cleanly
    last_event_at BIGINT,
    last_ok_at    BIGINT,
    -- from an event's arrival to its tokens being handled, for the last one
    lag_ms        BIGINT CHECK (lag_ms IS NULL OR lag_ms >= 0),
    last_error    TEXT NOT NULL DEFAULT '',
    updated_at    BIGINT NOT NULL
);
