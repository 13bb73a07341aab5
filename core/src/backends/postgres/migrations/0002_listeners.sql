-- mcp-session-store, PostgreSQL schema version 2: stores that LISTEN for
-- appends. An append sends NOTIFY only while some store listens, because a
-- notifying commit takes a database-wide lock until it is flushed, which
-- serializes commits.

CREATE TABLE {schema}.mss_listeners (
    id         text   NOT NULL PRIMARY KEY,
    expires_at bigint NOT NULL
);
