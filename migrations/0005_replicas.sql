-- keyward schema 5: the replicas that share this database, each seen by
-- its heartbeat. A replica that changes a key waits until every live one
-- has acknowledged dropping it from its verify cache.

CREATE TABLE replicas (
    id      TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    seen_at BIGINT NOT NULL
);
