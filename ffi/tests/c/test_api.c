/* Every operation of the C ABI, on each backend of MSS_TEST_BACKENDS. */
#include "harness.h"

static void open_reports_backend(ctx *c) {
  mss_error *err = NULL;
  const char *name = NULL;
  OK(mss_store_backend(c->store, &name, &err));
  CHECK(name != NULL && strcmp(name, c->backend) == 0);
}

static void session_create_get(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"sess-1\",\"metadata\":{\"client\":\"c\",\"n\":1},\"ttl_ms\":60000}"), &s, &err));
  HAS(s.data, "\"id\":\"sess-1\"");
  HAS(s.data, "\"metadata\":{\"client\":\"c\",\"n\":1}");
  HAS(s.data, "\"ttl_ms\":60000");
  CHECK(json_u64(s.data, "created_at") > 1600000000000ULL);
  CHECK(json_u64(s.data, "expires_at") == json_u64(s.data, "last_activity") + 60000);
  CHECK(strlen(s.data) == s.len);
  mss_buf_free(&s);
  CHECK(s.data == NULL && s.len == 0);
  mss_buf_free(&s); /* a second free of the same buffer does nothing */

  mss_buf got = {NULL, 0};
  OK(mss_session_get(c->store, "sess-1", &got, &err));
  HAS(got.data, "\"id\":\"sess-1\"");
  HAS(got.data, "\"client\":\"c\"");
  mss_buf_free(&got);

  /* A live id is never overwritten. */
  mss_buf again = {(char *)"untouched", 9};
  FAILS(MSS_ALREADY_EXISTS, mss_session_create(c->store, JSON("{\"id\":\"sess-1\"}"), &again, &err));
  CHECK(strcmp(again.data, "untouched") == 0 && again.len == 9);

  /* No options: a generated UUID v4 id and the store's TTL. */
  mss_buf gen = {NULL, 0};
  OK(mss_session_create(c->store, NULL, 0, &gen, &err));
  char id[300];
  CHECK(json_str(gen.data, "id", id, sizeof id));
  CHECK(strlen(id) == 36 && id[14] == '4');
  CHECK(json_u64(gen.data, "ttl_ms") == 30u * 60u * 1000u);
  mss_buf_free(&gen);

  FAILS(MSS_NOT_FOUND, mss_session_get(c->store, "no-such-session", &got, &err));
  CHECK(got.data == NULL);
}

static void session_update_touch(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"u1\",\"metadata\":{\"a\":1,\"b\":2}}"), &s, &err));
  uint64_t v0 = json_u64(s.data, "version");
  mss_buf_free(&s);

  OK(mss_session_update(c->store, "u1", JSON("{\"b\":3,\"c\":{\"d\":true}}"), &s, &err));
  HAS(s.data, "\"a\":1");
  HAS(s.data, "\"b\":3");
  HAS(s.data, "\"c\":{\"d\":true}");
  uint64_t v1 = json_u64(s.data, "version");
  CHECK(v1 > v0);
  mss_buf_free(&s);

  OK(mss_session_touch(c->store, "u1", &s, &err));
  CHECK(json_u64(s.data, "version") == v1); /* touch renews the TTL only */
  HAS(s.data, "\"b\":3");
  mss_buf_free(&s);

  FAILS(MSS_NOT_FOUND, mss_session_update(c->store, "nope", JSON("{}"), &s, &err));
  FAILS(MSS_NOT_FOUND, mss_session_touch(c->store, "nope", &s, &err));
}

static void session_delete_removes_state_and_events(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"d1\"}"), &s, &err));
  mss_buf_free(&s);
  OK(mss_state_set(c->store, "d1", "k", JSON("1"), NULL, &err));
  OK(mss_event_append(c->store, "d1", "st", JSON("{\"n\":1}"), &s, &err));
  mss_buf_free(&s);

  bool deleted = false;
  OK(mss_session_delete(c->store, "d1", &deleted, &err));
  CHECK(deleted);
  OK(mss_session_delete(c->store, "d1", &deleted, &err));
  CHECK(!deleted); /* idempotent */
  OK(mss_session_delete(c->store, "d1", NULL, &err));

  FAILS(MSS_NOT_FOUND, mss_session_get(c->store, "d1", &s, &err));
  FAILS(MSS_NOT_FOUND, mss_state_get(c->store, "d1", "k", &s, NULL, &err));
  FAILS(MSS_NOT_FOUND, mss_events_after(c->store, "d1", "st", 0, 10, &s, &err));

  /* A new session with the same id starts empty. */
  OK(mss_session_create(c->store, JSON("{\"id\":\"d1\"}"), &s, &err));
  mss_buf_free(&s);
  OK(mss_state_keys(c->store, "d1", &s, &err));
  CHECK(strcmp(s.data, "[]") == 0);
  mss_buf_free(&s);
}

static void session_list_and_count(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  uint64_t count = 99;
  OK(mss_session_count(c->store, &count, &err));
  CHECK(count == 0);
  const char *ids[] = {"l-c", "l-a", "l-e", "l-b", "l-d"};
  for (int i = 0; i < 5; i++) {
    char opts[64];
    snprintf(opts, sizeof opts, "{\"id\":\"%s\"}", ids[i]);
    OK(mss_session_create(c->store, JSON(opts), &s, &err));
    mss_buf_free(&s);
  }
  OK(mss_session_count(c->store, &count, &err));
  CHECK(count == 5);

  OK(mss_session_list(c->store, NULL, 2, &s, &err));
  CHECK(count_of(s.data, "\"created_at\"") == 2);
  HAS(s.data, "\"id\":\"l-a\"");
  HAS(s.data, "\"id\":\"l-b\"");
  HAS(s.data, "\"next\":\"l-b\"");
  mss_buf_free(&s);

  OK(mss_session_list(c->store, "l-b", 2, &s, &err));
  HAS(s.data, "\"id\":\"l-c\"");
  HAS(s.data, "\"id\":\"l-d\"");
  mss_buf_free(&s);

  OK(mss_session_list(c->store, "l-d", 2, &s, &err));
  HAS(s.data, "\"id\":\"l-e\"");
  HAS(s.data, "\"next\":null");
  mss_buf_free(&s);

  FAILS(MSS_INVALID_INPUT, mss_session_list(c->store, NULL, 0, &s, &err));
  FAILS(MSS_INVALID_INPUT, mss_session_list(c->store, NULL, 10001, &s, &err));
}

static void state_set_get_delete_keys_all(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"st\"}"), &s, &err));
  mss_buf_free(&s);

  uint64_t v1 = 0, v2 = 0, got_version = 0;
  OK(mss_state_set(c->store, "st", "user", JSON("{\"name\":\"ada\",\"tags\":[1,2]}"), &v1, &err));
  OK(mss_state_set(c->store, "st", "n", JSON("42"), &v2, &err));
  CHECK(v2 > v1);

  mss_buf value = {NULL, 0};
  OK(mss_state_get(c->store, "st", "user", &value, &got_version, &err));
  CHECK(strcmp(value.data, "{\"name\":\"ada\",\"tags\":[1,2]}") == 0);
  CHECK(got_version == v1);
  mss_buf_free(&value);
  OK(mss_state_get(c->store, "st", "n", &value, NULL, &err));
  CHECK(strcmp(value.data, "42") == 0);
  mss_buf_free(&value);

  /* JSON null is a value, not an absence. */
  OK(mss_state_set(c->store, "st", "nothing", JSON("null"), NULL, &err));
  OK(mss_state_get(c->store, "st", "nothing", &value, NULL, &err));
  CHECK(strcmp(value.data, "null") == 0);
  mss_buf_free(&value);

  /* UTF-8 keys and values. */
  OK(mss_state_set(c->store, "st", "cl\xc3\xa9", JSON("\"\xe2\x9c\x93\""), NULL, &err));
  OK(mss_state_get(c->store, "st", "cl\xc3\xa9", &value, NULL, &err));
  CHECK(strcmp(value.data, "\"\xe2\x9c\x93\"") == 0);
  mss_buf_free(&value);

  OK(mss_state_keys(c->store, "st", &s, &err));
  CHECK(strcmp(s.data, "[\"cl\xc3\xa9\",\"n\",\"nothing\",\"user\"]") == 0);
  mss_buf_free(&s);

  OK(mss_state_all(c->store, "st", &s, &err));
  HAS(s.data, "{\"key\":\"n\",\"value\":42,\"version\":");
  HAS(s.data, "{\"key\":\"user\",\"value\":{\"name\":\"ada\",\"tags\":[1,2]},\"version\":");
  CHECK(count_of(s.data, "\"key\":") == 4);
  mss_buf_free(&s);

  bool deleted = false;
  OK(mss_state_delete(c->store, "st", "n", &deleted, &err));
  CHECK(deleted);
  OK(mss_state_delete(c->store, "st", "n", &deleted, &err));
  CHECK(!deleted);
  value.data = NULL;
  FAILS(MSS_NOT_FOUND, mss_state_get(c->store, "st", "n", &value, NULL, &err));
  CHECK(value.data == NULL);

  FAILS(MSS_NOT_FOUND, mss_state_set(c->store, "missing", "k", JSON("1"), NULL, &err));
  FAILS(MSS_NOT_FOUND, mss_state_keys(c->store, "missing", &s, &err));
  FAILS(MSS_NOT_FOUND, mss_state_all(c->store, "missing", &s, &err));
}

static void state_compare_and_set(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"cas\"}"), &s, &err));
  mss_buf_free(&s);

  uint64_t v1 = 0, v2 = 0, untouched = 12345;
  OK(mss_state_set_if_absent(c->store, "cas", "k", JSON("1"), &v1, &err));
  FAILS(MSS_CONFLICT, mss_state_set_if_absent(c->store, "cas", "k", JSON("2"), &untouched, &err));
  CHECK(untouched == 12345);

  OK(mss_state_set_if_version(c->store, "cas", "k", JSON("2"), v1, &v2, &err));
  CHECK(v2 > v1);
  /* The old version lost: nothing written. */
  FAILS(MSS_CONFLICT, mss_state_set_if_version(c->store, "cas", "k", JSON("3"), v1, NULL, &err));
  FAILS(MSS_CONFLICT, mss_state_set_if_version(c->store, "cas", "absent", JSON("3"), v1, NULL, &err));
  mss_buf value = {NULL, 0};
  uint64_t version = 0;
  OK(mss_state_get(c->store, "cas", "k", &value, &version, &err));
  CHECK(strcmp(value.data, "2") == 0 && version == v2);
  mss_buf_free(&value);
}

/* Increment a number; NULL current means 0. */
typedef struct counter_ctx {
  char text[32];
  int calls;
} counter_ctx;

static int32_t increment(void *user, const char *current, size_t len, const char **out, size_t *out_len) {
  counter_ctx *cc = user;
  cc->calls++;
  long n = 0;
  if (current != NULL) {
    char tmp[32];
    if (len >= sizeof tmp) return MSS_INVALID_INPUT;
    memcpy(tmp, current, len);
    tmp[len] = '\0';
    n = strtol(tmp, NULL, 10);
  }
  snprintf(cc->text, sizeof cc->text, "%ld", n + 1);
  *out = cc->text;
  *out_len = strlen(cc->text);
  return 0;
}

static int32_t refuse(void *user, const char *current, size_t len, const char **out, size_t *out_len) {
  (void)user, (void)current, (void)len, (void)out, (void)out_len;
  return MSS_CONFLICT;
}

static int32_t bad_json(void *user, const char *current, size_t len, const char **out, size_t *out_len) {
  (void)user, (void)current, (void)len;
  *out = "{not json";
  *out_len = strlen(*out);
  return 0;
}

static void state_update_with_callback(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"upd\"}"), &s, &err));
  mss_buf_free(&s);
  counter_ctx cc = {{0}, 0};
  for (int i = 0; i < 10; i++) {
    OK(mss_state_update(c->store, "upd", "n", increment, &cc, NULL, NULL, &err));
  }
  mss_buf value = {NULL, 0};
  uint64_t version = 0, got = 0;
  OK(mss_state_update(c->store, "upd", "n", increment, &cc, &value, &version, &err));
  CHECK(strcmp(value.data, "11") == 0);
  mss_buf_free(&value);
  OK(mss_state_get(c->store, "upd", "n", &value, &got, &err));
  CHECK(strcmp(value.data, "11") == 0 && got == version);
  mss_buf_free(&value);

  /* The callback's own status stops the update and is returned. */
  FAILS(MSS_CONFLICT, mss_state_update(c->store, "upd", "n", refuse, NULL, &value, NULL, &err));
  FAILS(MSS_INVALID_INPUT, mss_state_update(c->store, "upd", "n", bad_json, NULL, &value, NULL, &err));
  FAILS(MSS_INVALID_INPUT, mss_state_update(c->store, "upd", "n", NULL, NULL, &value, NULL, &err));
  OK(mss_state_get(c->store, "upd", "n", &value, NULL, &err));
  CHECK(strcmp(value.data, "11") == 0);
  mss_buf_free(&value);
}

static void events_append_and_replay_by_stream(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"ev\"}"), &s, &err));
  mss_buf_free(&s);

  /* seq 1..6, alternating streams "2" and "_GET_stream". */
  char wires[7][128];
  for (int i = 1; i <= 6; i++) {
    char data[64];
    snprintf(data, sizeof data, "{\"n\":%d}", i);
    mss_buf e = {NULL, 0};
    OK(mss_event_append(c->store, "ev", (i % 2) ? "2" : "_GET_stream", JSON(data), &e, &err));
    CHECK(json_u64(e.data, "seq") == (uint64_t)i);
    HAS(e.data, "\"session_id\":\"ev\"");
    HAS(e.data, data);
    CHECK(json_str(e.data, "id", wires[i], sizeof wires[i]));
    mss_buf_free(&e);
  }

  mss_buf page = {NULL, 0};
  OK(mss_events_after(c->store, "ev", "2", 0, 100, &page, &err));
  CHECK(count_of(page.data, "\"stream_id\":\"2\"") == 3);
  HAS_NOT(page.data, "_GET_stream");
  const char *p1 = strstr(page.data, "{\"n\":1}"), *p3 = strstr(page.data, "{\"n\":3}"),
             *p5 = strstr(page.data, "{\"n\":5}");
  CHECK(p1 && p3 && p5 && p1 < p3 && p3 < p5);
  HAS(page.data, "\"next\":null");
  mss_buf_free(&page);

  /* Paginated: 2 per page, next is the wire id of the last item. */
  OK(mss_events_after(c->store, "ev", "_GET_stream", 0, 2, &page, &err));
  CHECK(count_of(page.data, "\"seq\":") == 2);
  char next[128];
  CHECK(json_str(page.data, "next", next, sizeof next));
  CHECK(strcmp(next, wires[4]) == 0);
  mss_buf_free(&page);
  OK(mss_events_replay(c->store, "ev", next, 2, &page, &err));
  CHECK(count_of(page.data, "\"seq\":") == 1);
  HAS(page.data, "\"seq\":6");
  mss_buf_free(&page);

  /* Replay after a wire id: only that id's stream, after it. */
  OK(mss_events_replay(c->store, "ev", wires[1], 100, &page, &err));
  CHECK(count_of(page.data, "\"seq\":") == 2);
  HAS(page.data, "\"seq\":3");
  HAS(page.data, "\"seq\":5");
  mss_buf_free(&page);

  /* A wire id of another session replays nothing. */
  OK(mss_session_create(c->store, JSON("{\"id\":\"other\"}"), &s, &err));
  mss_buf_free(&s);
  page.data = NULL;
  FAILS(MSS_INVALID_INPUT, mss_events_replay(c->store, "other", wires[1], 100, &page, &err));
  CHECK(page.data == NULL);
  FAILS(MSS_NOT_FOUND, mss_event_append(c->store, "nope", "2", JSON("1"), &s, &err));
}

static void events_priming_type_retry(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"pr\"}"), &s, &err));
  mss_buf_free(&s);

  mss_buf e = {NULL, 0};
  OK(mss_event_append_json(c->store, "pr", JSON("{\"stream_id\":\"s\"}"), &e, &err));
  HAS_NOT(e.data, "\"data\""); /* a priming event has no data */
  CHECK(json_u64(e.data, "seq") == 1);
  mss_buf_free(&e);
  OK(mss_event_append_json(c->store, "pr",
                           JSON("{\"stream_id\":\"s\",\"data\":null,\"event_type\":\"message\",\"retry_ms\":1500}"),
                           &e, &err));
  HAS(e.data, "\"data\":null");
  HAS(e.data, "\"event_type\":\"message\"");
  HAS(e.data, "\"retry_ms\":1500");
  mss_buf_free(&e);

  mss_buf page = {NULL, 0};
  OK(mss_events_after(c->store, "pr", "s", 0, 10, &page, &err));
  CHECK(count_of(page.data, "\"seq\":") == 2);
  CHECK(count_of(page.data, "\"data\":") == 1);
  HAS(page.data, "\"event_type\":null");
  mss_buf_free(&page);
}

static void event_ids_format_and_parse(ctx *c) {
  mss_error *err = NULL;
  mss_buf wire = {NULL, 0};
  OK(mss_event_id_format("sess-a", "_GET_stream", 7, &wire, &err));
  for (size_t i = 0; i < wire.len; i++) {
    char ch = wire.data[i];
    CHECK((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '.' ||
          ch == '_' || ch == '-');
  }
  CHECK(strncmp(wire.data, "7.", 2) == 0);
  mss_buf stream = {NULL, 0};
  uint64_t seq = 0;
  OK(mss_event_id_parse(wire.data, "sess-a", &stream, &seq, &err));
  CHECK(strcmp(stream.data, "_GET_stream") == 0 && seq == 7);
  mss_buf_free(&stream);

  /* Foreign, altered and malformed ids are refused; outputs untouched. */
  seq = 99;
  FAILS(MSS_INVALID_INPUT, mss_event_id_parse(wire.data, "sess-b", &stream, &seq, &err));
  wire.data[0] = '8';
  FAILS(MSS_INVALID_INPUT, mss_event_id_parse(wire.data, "sess-a", &stream, &seq, &err));
  FAILS(MSS_INVALID_INPUT, mss_event_id_parse("garbage", "sess-a", &stream, &seq, &err));
  CHECK(seq == 99 && stream.data == NULL);
  mss_buf_free(&wire);

  FAILS(MSS_INVALID_INPUT, mss_event_id_format("bad id", "s", 1, &wire, &err));
  FAILS(MSS_INVALID_INPUT, mss_event_id_format("sess-a", "", 1, &wire, &err));
  CHECK(wire.data == NULL);
}

static void trimming_reports_cursor_expired(ctx *c) {
  mss_error *err = NULL;
  mss_store *small = NULL;
  OK(ns_open(c, "max_events_per_session=3", &small));
  mss_buf s = {NULL, 0};
  OK(mss_session_create(small, JSON("{\"id\":\"trim\"}"), &s, &err));
  mss_buf_free(&s);
  for (int i = 0; i < 6; i++) {
    OK(mss_event_append(small, "trim", "s", JSON("1"), &s, &err));
    mss_buf_free(&s);
  }
  mss_buf page = {NULL, 0};
  mss_status st = mss_events_after(small, "trim", "s", 1, 10, &page, &err);
  bool expired = st == MSS_CURSOR_EXPIRED && err != NULL && mss_error_status(err) == MSS_CURSOR_EXPIRED;
  mss_error_free(err);
  err = NULL;
  if (!expired) mss_store_free(small);
  CHECK(expired);
  CHECK(page.data == NULL);
  st = mss_events_after(small, "trim", "s", 3, 10, &page, &err);
  mss_store_free(small);
  OK(st);
  CHECK(count_of(page.data, "\"seq\":") == 3);
  mss_buf_free(&page);
}

static void cleanup_removes_expired_sessions(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  /* 3 s: long enough for the writes below even under valgrind. */
  OK(mss_session_create(c->store, JSON("{\"id\":\"short\",\"ttl_ms\":3000}"), &s, &err));
  mss_buf_free(&s);
  OK(mss_state_set(c->store, "short", "k", JSON("1"), NULL, &err));
  OK(mss_event_append(c->store, "short", "s", JSON("1"), &s, &err));
  mss_buf_free(&s);
  OK(mss_session_create(c->store, JSON("{\"id\":\"long\"}"), &s, &err));
  mss_buf_free(&s);
  /* Wait for the TTL to pass (no timing is asserted). */
  mss_status got = MSS_OK;
  for (int i = 0; i < 600 && got == MSS_OK; i++) {
    sleep_ms(100);
    got = mss_session_get(c->store, "short", &s, NULL);
    mss_buf_free(&s);
  }
  CHECK(got == MSS_NOT_FOUND);
  mss_cleanup_stats stats = {0, 0, 0};
  OK(mss_cleanup_expired(c->store, &stats, &err));
  CHECK(stats.sessions == 1 && stats.state_entries == 1 && stats.events == 1);
  OK(mss_cleanup_expired(c->store, NULL, &err));
  uint64_t count = 0;
  OK(mss_session_count(c->store, &count, &err));
  CHECK(count == 1);
  OK(mss_session_get(c->store, "long", &s, &err));
  mss_buf_free(&s);
}

static void subscription_replays_then_follows(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"sub\"}"), &s, &err));
  mss_buf_free(&s);
  OK(mss_event_append(c->store, "sub", "live", JSON("{\"n\":1}"), &s, &err));
  mss_buf_free(&s);
  OK(mss_event_append(c->store, "sub", "other", JSON("{\"n\":2}"), &s, &err));
  mss_buf_free(&s);

  mss_subscription *sub = NULL;
  OK(mss_subscribe(c->store, "sub", "live", 0, &sub, &err));
  bool received = false;
  mss_buf e = {NULL, 0};
  mss_status st = mss_subscription_next(sub, 10000, &received, &e, &err);
  if (st != MSS_OK || !received) mss_subscription_free(sub);
  OK(st);
  CHECK(received);
  bool first_ok = json_u64(e.data, "seq") == 1 && strstr(e.data, "{\"n\":1}") != NULL;
  mss_buf_free(&e);
  if (!first_ok) mss_subscription_free(sub);
  CHECK(first_ok);

  /* Nothing new: the wait times out without an event. */
  st = mss_subscription_next(sub, 20, &received, &e, &err);
  bool quiet = st == MSS_OK && !received && e.data == NULL;
  if (!quiet) mss_subscription_free(sub);
  CHECK(quiet);

  OK(mss_event_append(c->store, "sub", "live", JSON("{\"n\":3}"), &s, &err));
  mss_buf_free(&s);
  st = mss_subscription_next(sub, 10000, &received, &e, &err);
  bool live_ok = st == MSS_OK && received && json_u64(e.data, "seq") == 3;
  mss_buf_free(&e);
  if (!live_ok) mss_subscription_free(sub);
  CHECK(live_ok);

  /* Deleting the session ends the subscription with NOT_FOUND. */
  OK(mss_session_delete(c->store, "sub", NULL, &err));
  st = mss_subscription_next(sub, 10000, &received, &e, &err);
  mss_status again = mss_subscription_next(sub, 10, &received, &e, NULL);
  mss_subscription_free(sub);
  FAILS(MSS_NOT_FOUND, st);
  CHECK(again == MSS_NOT_FOUND);
  CHECK(e.data == NULL);

  FAILS(MSS_NOT_FOUND, mss_subscribe(c->store, "sub", "live", 0, &sub, &err));
}

static void second_store_sees_shared_data(ctx *c) {
  mss_error *err = NULL;
  if (!c->shared) return; /* memory:// is one process's own store */
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"shared\"}"), &s, &err));
  mss_buf_free(&s);
  OK(mss_state_set(c->store, "shared", "k", JSON("\"v\""), NULL, &err));
  mss_store *other = NULL;
  OK(ns_open(c, "", &other));
  mss_buf value = {NULL, 0};
  mss_status st = mss_state_get(other, "shared", "k", &value, NULL, &err);
  mss_store_free(other);
  OK(st);
  CHECK(strcmp(value.data, "\"v\"") == 0);
  mss_buf_free(&value);
}

static void open_with_options_json(ctx *c) {
  mss_error *err = NULL;
  char url[1200];
  ns_url(c, "", url, sizeof url);
  mss_store *st = NULL;
  OK(mss_store_open_with(url, JSON("{\"ttl_ms\":5000,\"max_payload_bytes\":64,\"max_sessions\":2}"), &st, &err));
  mss_buf s = {NULL, 0};
  mss_status r1 = mss_session_create(st, JSON("{\"id\":\"o1\"}"), &s, &err);
  bool ttl_ok = r1 == MSS_OK && json_u64(s.data, "ttl_ms") == 5000;
  mss_buf_free(&s);
  mss_status big = mss_state_set(st, "o1", "k", JSON("\"0123456789012345678901234567890123456789012345678901234567890123\""), NULL, NULL);
  mss_status r2 = mss_session_create(st, NULL, 0, &s, NULL);
  mss_buf_free(&s);
  mss_status r3 = mss_session_create(st, NULL, 0, &s, NULL);
  mss_buf_free(&s);
  mss_store_free(st);
  OK(r1);
  CHECK(ttl_ok);
  CHECK(big == MSS_LIMIT_EXCEEDED);
  CHECK(r2 == MSS_OK && r3 == MSS_LIMIT_EXCEEDED);
}

static const test_case CASES[] = {
    {"open_reports_backend", open_reports_backend, true},
    {"session_create_get", session_create_get, true},
    {"session_update_touch", session_update_touch, true},
    {"session_delete_removes_state_and_events", session_delete_removes_state_and_events, true},
    {"session_list_and_count", session_list_and_count, true},
    {"state_set_get_delete_keys_all", state_set_get_delete_keys_all, true},
    {"state_compare_and_set", state_compare_and_set, true},
    {"state_update_with_callback", state_update_with_callback, true},
    {"events_append_and_replay_by_stream", events_append_and_replay_by_stream, true},
    {"events_priming_type_retry", events_priming_type_retry, true},
    {"event_ids_format_and_parse", event_ids_format_and_parse, false},
    {"trimming_reports_cursor_expired", trimming_reports_cursor_expired, true},
    {"cleanup_removes_expired_sessions", cleanup_removes_expired_sessions, true},
    {"subscription_replays_then_follows", subscription_replays_then_follows, true},
    {"second_store_sees_shared_data", second_store_sees_shared_data, true},
    {"open_with_options_json", open_with_options_json, true},
};

int main(void) { return RUN_TESTS("test_api", CASES); }
