//! The SQL of every operation, built once per store with its schema name
//! (and notification channel) filled in.

/// The columns of a session row, in the order
/// [`session_from_row`](crate::backends::common::session_from_row) reads them.
const SESSION_COLS: &str =
    "id, created_at, last_activity, expires_at, ttl_ms, metadata, version, last_seq";

/// The SQL of every operation, with the schema name filled in once.
pub(super) struct Sql {
    pub get_session: String,
    pub create_session: String,
    pub update_lock: String,
    pub update_write: String,
    pub touch: String,
    pub delete_session: String,
    pub list_sessions: String,
    pub count_sessions: String,
    pub get_state: String,
    pub set_state: String,
    pub delete_state: String,
    pub state_keys: String,
    pub state_all: String,
    pub append: String,
    pub append_batch: String,
    pub events_after: String,
    pub cleanup: String,
}

impl Sql {
    pub fn new(schema: &str, channel: Option<&str>) -> Sql {
        let s = schema;
        let notify_of = |id: &str| match channel {
            Some(channel) => format!(
                " LEFT JOIN LATERAL (SELECT pg_notify('{channel}', {id}) \
                 WHERE EXISTS (SELECT 1 FROM {s}.mss_listeners WHERE expires_at > $6)) n ON true"
            ),
            None => String::new(),
        };
        let notify = notify_of("$1");
        let notify_batch = notify_of("num.sid");
        Sql {
            get_session: format!(
                "SELECT {SESSION_COLS} FROM {s}.mss_sessions WHERE id = $1 AND expires_at > $2"
            ),
            create_session: format!("SELECT {s}.mss_create_session($1, $2, $3, $4, $5)"),
            update_lock: format!(
                "SELECT metadata FROM {s}.mss_sessions WHERE id = $1 AND expires_at > $2 FOR UPDATE"
            ),
            update_write: format!(
                "UPDATE {s}.mss_sessions SET metadata = $1, version = version + 1, \
                 last_activity = $2, expires_at = $2 + ttl_ms WHERE id = $3 RETURNING {SESSION_COLS}"
            ),
            touch: format!(
                "UPDATE {s}.mss_sessions SET last_activity = $1, expires_at = $1 + ttl_ms \
                 WHERE id = $2 AND expires_at > $1 RETURNING {SESSION_COLS}"
            ),
            delete_session: format!("SELECT {s}.mss_delete_session($1)"),
            list_sessions: format!(
                "SELECT {SESSION_COLS} FROM {s}.mss_sessions WHERE expires_at > $1 AND id > $2 \
                 ORDER BY id LIMIT $3"
            ),
            count_sessions: format!("SELECT count(*) FROM {s}.mss_sessions WHERE expires_at > $1"),
            get_state: format!(
                "SELECT st.value, st.version FROM {s}.mss_sessions ss LEFT JOIN {s}.mss_state st \
                 ON st.session_id = ss.id AND st.key = $2 WHERE ss.id = $1 AND ss.expires_at > $3"
            ),
            set_state: format!(
                "SELECT o_status, o_version FROM {s}.mss_set_state($1, $2, $3, $4, $5, $6)"
            ),
            delete_state: format!("SELECT {s}.mss_delete_state($1, $2, $3)"),
            state_keys: format!(
                "SELECT st.key FROM {s}.mss_sessions ss LEFT JOIN {s}.mss_state st \
                 ON st.session_id = ss.id WHERE ss.id = $1 AND ss.expires_at > $2 ORDER BY st.key"
            ),
            state_all: format!(
                "SELECT st.key, st.value, st.version FROM {s}.mss_sessions ss LEFT JOIN {s}.mss_state st \
                 ON st.session_id = ss.id WHERE ss.id = $1 AND ss.expires_at > $2 ORDER BY st.key"
            ),
            // The session row's lock, taken by the UPDATE, orders appends; the
            // DELETE trims what `max_events_per_session` no longer keeps.
            append: format!(
                "WITH s AS (\
                   UPDATE {s}.mss_sessions SET last_seq = last_seq + 1, version = version + 1, \
                   last_activity = $6, expires_at = $6 + ttl_ms, \
                   trimmed_through = GREATEST(trimmed_through, last_seq + 1 - $7) \
                   WHERE id = $1 AND expires_at > $6 RETURNING id, last_seq, trimmed_through), \
                 ins AS (\
                   INSERT INTO {s}.mss_events (session_id, seq, stream_id, data, event_type, retry_ms, created_at) \
                   SELECT id, last_seq, $2, $3, $4, $5, $6 FROM s RETURNING seq), \
                 del AS (\
                   DELETE FROM {s}.mss_events e USING s \
                   WHERE e.session_id = s.id AND e.seq <= s.trimmed_through) \
                 SELECT ins.seq FROM ins{notify}"
            ),
            // Appends of several callers in one statement ($1-$5 arrays,
            // one element per append, in arrival order). The sessions' rows
            // are locked in id order, so two batches never deadlock; each
            // session's `last_seq` rises by its number of appends, which
            // take the new numbers in arrival order. An event that the same
            // batch already trims is not inserted. Answers (position, seq)
            // per append whose session is live.
            append_batch: format!(
                "WITH req AS (\
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) \
                   WITH ORDINALITY AS r(sid, stream, data, etype, retry, ord)), \
                 cnt AS (SELECT sid, count(*) AS n FROM req GROUP BY sid), \
                 lk AS (\
                   SELECT ss.id, cnt.n FROM {s}.mss_sessions ss JOIN cnt ON cnt.sid = ss.id \
                   WHERE ss.expires_at > $6 ORDER BY ss.id FOR UPDATE OF ss), \
                 s AS (\
                   UPDATE {s}.mss_sessions ss SET last_seq = ss.last_seq + lk.n, \
                   version = ss.version + lk.n, last_activity = $6, expires_at = $6 + ss.ttl_ms, \
                   trimmed_through = GREATEST(ss.trimmed_through, ss.last_seq + lk.n - $7) \
                   FROM lk WHERE ss.id = lk.id AND ss.expires_at > $6 \
                   RETURNING ss.id, ss.last_seq, ss.trimmed_through, lk.n), \
                 num AS (\
                   SELECT req.*, s.trimmed_through, \
                   s.last_seq - s.n + row_number() OVER (PARTITION BY req.sid ORDER BY req.ord) AS seq \
                   FROM req JOIN s ON s.id = req.sid), \
                 ins AS (\
                   INSERT INTO {s}.mss_events (session_id, seq, stream_id, data, event_type, retry_ms, created_at) \
                   SELECT sid, seq, stream, data, etype, retry, $6 FROM num WHERE seq > trimmed_through), \
                 del AS (\
                   DELETE FROM {s}.mss_events e USING s \
                   WHERE e.session_id = s.id AND e.seq <= s.trimmed_through) \
                 SELECT num.ord, num.seq FROM num{notify_batch}"
            ),
            events_after: format!(
                "SELECT ss.last_seq, ss.trimmed_through, e.seq, e.data, e.event_type, e.retry_ms, e.created_at \
                 FROM {s}.mss_sessions ss LEFT JOIN LATERAL (\
                   SELECT seq, data, event_type, retry_ms, created_at FROM {s}.mss_events \
                   WHERE session_id = ss.id AND seq > $3 AND stream_id = $2 ORDER BY seq LIMIT $5) e ON true \
                 WHERE ss.id = $1 AND ss.expires_at > $4 ORDER BY e.seq"
            ),
            // Rows a writer holds are skipped: a writer only touches live
            // sessions, and if it renewed one, the re-check of `expires_at`
            // after the lock drops it. So no deleted session has rows newer
            // than this statement's snapshot.
            cleanup: format!(
                "WITH gone AS (\
                   DELETE FROM {s}.mss_sessions WHERE id IN (\
                     SELECT id FROM {s}.mss_sessions WHERE expires_at <= $1 \
                     ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
                   AND expires_at <= $1 RETURNING id), \
                 st AS (DELETE FROM {s}.mss_state WHERE session_id IN (SELECT id FROM gone) RETURNING 1), \
                 ev AS (DELETE FROM {s}.mss_events WHERE session_id IN (SELECT id FROM gone) RETURNING 1) \
                 SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM st), (SELECT count(*) FROM ev)"
            ),
        }
    }
}
