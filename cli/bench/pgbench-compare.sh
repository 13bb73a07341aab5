#!/usr/bin/env bash
# Run `mcp-session-store bench` W3a (append) and W2 (state) on PostgreSQL
# next to pgbench running the same statements the store sends, both with 8
# clients, in one go:  cli/bench/pgbench-compare.sh [DURATION_S]
# MSS_BENCH_SESSIONS (default 200) sets the bench's N. Needs a release build of the CLI and PostgreSQL on 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
duration=${1:-20}
server=${MSS_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
schema=mss_pgbench
bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/mcp-session-store"
[ -x "$bin" ] || cargo build -q --release -p mcp-session-store-cli
store="$server?sslmode=disable&schema=$schema"
work=$(mktemp -d)
trap 'rm -rf "$work"; psql -q "$server" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null' EXIT

echo "== mcp-session-store bench (C=8)"
"$bin" bench --store "$store" --sessions "${MSS_BENCH_SESSIONS:-200}" --concurrency 8 --only W2,W3a 2>/dev/null

# 1000 sessions for pgbench to write to.
"$bin" migrate --store "$store" >/dev/null
psql -q "$server" <<SQL
TRUNCATE $schema.mss_sessions, $schema.mss_state, $schema.mss_events;
INSERT INTO $schema.mss_sessions (id, created_at, last_activity, expires_at, ttl_ms, metadata, version)
SELECT 'pgb-' || g, 0, 0, 9000000000000000, 1800000, '{}', 1 FROM generate_series(1, 1000) g;
SQL

# The append statement of core/src/backends/postgres.rs (notify on, nobody
# listening), with a ~200-byte event as in W3a.
cat >"$work/append.sql" <<SQL
\set sid random(1, 1000)
WITH s AS (UPDATE $schema.mss_sessions SET last_seq = last_seq + 1, version = version + 1, last_activity = 1, expires_at = 1 + ttl_ms + 9000000000000000, trimmed_through = GREATEST(trimmed_through, last_seq + 1 - 1000) WHERE id = 'pgb-' || :sid AND expires_at > 1 RETURNING id, last_seq, trimmed_through), ins AS (INSERT INTO $schema.mss_events (session_id, seq, stream_id, data, event_type, retry_ms, created_at) SELECT id, last_seq, 'stream-1', '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok-1","progress":1,"total":100,"message":"working on step 1 of the job, with some padding text to reach about two hundred bytes"}}', NULL, NULL, 1 FROM s RETURNING seq), del AS (DELETE FROM $schema.mss_events e USING s WHERE e.session_id = s.id AND e.seq <= s.trimmed_through) SELECT ins.seq FROM ins LEFT JOIN LATERAL (SELECT pg_notify('${schema}_mss_events', 'pgb-' || :sid) WHERE EXISTS (SELECT 1 FROM $schema.mss_listeners WHERE expires_at > 1)) n ON true;
SQL
# The state write: one call of mss_set_state, as set_state sends it.
cat >"$work/state.sql" <<SQL
\set sid random(1, 1000)
\set key random(1, 10)
SELECT o_status, o_version FROM $schema.mss_set_state('pgb-' || :sid, 'key-' || :key, '{"n":1,"s":"value"}', 0, NULL, 1);
SQL
echo "== pgbench -c 8 append (the W3a statement)"
pgbench -n -c 8 -j 2 -M prepared -T "$duration" -f "$work/append.sql" "$server" 2>&1 | grep -E "^(tps|latency|pgbench|ERROR|FATAL)"
echo "== pgbench -c 8 set_state (the W2 write)"
pgbench -n -c 8 -j 2 -M prepared -T "$duration" -f "$work/state.sql" "$server" 2>&1 | grep -E "^(tps|latency|pgbench|ERROR|FATAL)"
