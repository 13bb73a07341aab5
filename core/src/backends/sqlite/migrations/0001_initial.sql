-- mcp-session-store, SQLite schema version 1.

CREATE TABLE mss_sessions (
    id              TEXT    NOT NULL PRIMARY KEY,
    created_at      INTEGER NOT NULL,
    last_activity   INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    ttl_ms          INTEGER NOT NULL,
    metadata        TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    -- seq of the newest event; the next append takes last_seq + 1
    last_seq        INTEGER NOT NULL DEFAULT 0,
    -- every seq <= trimmed_through was trimmed
    trimmed_through INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX mss_sessions_expires_at ON mss_sessions (expires_at);

CREATE TABLE mss_state (
    session_id TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    PRIMARY KEY (session_id, key)
) WITHOUT ROWID;

CREATE TABLE mss_events (
    session_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    stream_id  TEXT    NOT NULL,
    data       TEXT,
    event_type TEXT,
    retry_ms   INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
-- No (session_id, stream_id, seq) index: a replay scans the session's events
-- after the cursor (at most max_events_per_session rows) and filters by
-- stream, while every append saves writing one more index page.
