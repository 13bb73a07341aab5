-- mcp-session-store, PostgreSQL schema version 1.
-- `{schema}` is replaced by the store's validated schema name.
-- Ids and keys use the "C" collation, so ORDER BY is byte order, as on every
-- other backend.

CREATE TABLE {schema}.mss_sessions (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    created_at      bigint NOT NULL,
    last_activity   bigint NOT NULL,
    expires_at      bigint NOT NULL,
    ttl_ms          bigint NOT NULL,
    metadata        text   NOT NULL,
    version         bigint NOT NULL,
    -- seq of the newest event; the next append takes last_seq + 1
    last_seq        bigint NOT NULL DEFAULT 0,
    -- every seq <= trimmed_through was trimmed
    trimmed_through bigint NOT NULL DEFAULT 0
);

CREATE INDEX mss_sessions_expires_at ON {schema}.mss_sessions (expires_at);

CREATE TABLE {schema}.mss_state (
    session_id text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      text   NOT NULL,
    version    bigint NOT NULL,
    PRIMARY KEY (session_id, key)
);

CREATE TABLE {schema}.mss_events (
    session_id text COLLATE "C" NOT NULL,
    seq        bigint NOT NULL,
    stream_id  text   NOT NULL,
    data       text,
    event_type text,
    retry_ms   bigint,
    created_at bigint NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- The writes below lock the session row first and only then read or write
-- its state and events. Each statement of a PL/pgSQL function takes a fresh
-- snapshot, so what they read after the lock is what the previous holder
-- committed: compare-and-set cannot lose an update, and every writer of one
-- session takes locks in the same order (no deadlock).

-- 0 created, 1 a live session has the id, 2 max_sessions reached.
CREATE FUNCTION {schema}.mss_create_session(
    p_id text, p_now bigint, p_ttl bigint, p_metadata text, p_max bigint
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_expires bigint;
    v_live    bigint;
BEGIN
    SELECT expires_at INTO v_expires FROM {schema}.mss_sessions
        WHERE id = p_id FOR UPDATE;
    IF v_expires > p_now THEN
        RETURN 1;
    END IF;
    IF p_max IS NOT NULL THEN
        -- One creator at a time counts, so the limit holds under concurrency.
        PERFORM pg_advisory_xact_lock(hashtext('mss_create_session:{schema}'));
        SELECT count(*) INTO v_live FROM {schema}.mss_sessions WHERE expires_at > p_now;
        IF v_live >= p_max THEN
            RETURN 2;
        END IF;
    END IF;
    IF v_expires IS NOT NULL THEN
        -- The old session expired: it is invisible, so it is replaced.
        DELETE FROM {schema}.mss_sessions WHERE id = p_id;
        DELETE FROM {schema}.mss_state WHERE session_id = p_id;
        DELETE FROM {schema}.mss_events WHERE session_id = p_id;
    END IF;
    INSERT INTO {schema}.mss_sessions
        (id, created_at, last_activity, expires_at, ttl_ms, metadata, version, last_seq, trimmed_through)
        VALUES (p_id, p_now, p_now, p_now + p_ttl, p_ttl, p_metadata, 1, 0, 0)
        ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 1;
    END IF;
    RETURN 0;
END
$$;

-- o_status: 0 written (o_version = the new version), 1 no live session,
-- 2 the condition does not hold (o_version = the key's version, or NULL).
-- p_mode: 0 unconditional, 1 only if absent, 2 only at version p_version.
CREATE FUNCTION {schema}.mss_set_state(
    p_id text, p_key text, p_value text, p_mode integer, p_version bigint, p_now bigint,
    OUT o_status integer, OUT o_version bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_current bigint;
BEGIN
    PERFORM 1 FROM {schema}.mss_sessions
        WHERE id = p_id AND expires_at > p_now FOR UPDATE;
    IF NOT FOUND THEN
        o_status := 1;
        RETURN;
    END IF;
    IF p_mode <> 0 THEN
        SELECT version INTO v_current FROM {schema}.mss_state
            WHERE session_id = p_id AND key = p_key;
        IF (p_mode = 1 AND v_current IS NOT NULL)
           OR (p_mode = 2 AND v_current IS DISTINCT FROM p_version) THEN
            o_status := 2;
            o_version := v_current;
            RETURN;
        END IF;
    END IF;
    UPDATE {schema}.mss_sessions
        SET version = version + 1, last_activity = p_now, expires_at = p_now + ttl_ms
        WHERE id = p_id
        RETURNING version INTO o_version;
    INSERT INTO {schema}.mss_state (session_id, key, value, version)
        VALUES (p_id, p_key, p_value, o_version)
        ON CONFLICT (session_id, key)
        DO UPDATE SET value = excluded.value, version = excluded.version;
    o_status := 0;
END
$$;

-- -1 no live session, 0 the key did not exist, 1 deleted.
CREATE FUNCTION {schema}.mss_delete_state(p_id text, p_key text, p_now bigint)
RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM {schema}.mss_sessions
        WHERE id = p_id AND expires_at > p_now FOR UPDATE;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    DELETE FROM {schema}.mss_state WHERE session_id = p_id AND key = p_key;
    IF FOUND THEN
        UPDATE {schema}.mss_sessions
            SET version = version + 1, last_activity = p_now, expires_at = p_now + ttl_ms
            WHERE id = p_id;
        RETURN 1;
    END IF;
    UPDATE {schema}.mss_sessions
        SET last_activity = p_now, expires_at = p_now + ttl_ms
        WHERE id = p_id;
    RETURN 0;
END
$$;

-- The session's expires_at, or NULL if there was none. The session row goes
-- first: an append waiting on its lock then finds nothing, so no event can
-- be added after its events were deleted.
CREATE FUNCTION {schema}.mss_delete_session(p_id text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_expires bigint;
BEGIN
    DELETE FROM {schema}.mss_sessions WHERE id = p_id RETURNING expires_at INTO v_expires;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    DELETE FROM {schema}.mss_state WHERE session_id = p_id;
    DELETE FROM {schema}.mss_events WHERE session_id = p_id;
    RETURN v_expires;
END
$$;
