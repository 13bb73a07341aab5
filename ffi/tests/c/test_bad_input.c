/* Bad input from C: NULL pointers, invalid UTF-8, invalid JSON, JSON of the
 * wrong shape, oversize payloads, unknown URL schemes, use after free. Each
 * gets a clear status and error object; nothing crashes, nothing stored is
 * lost, and outputs are written only on success. */
#include "harness.h"

#define BAD MSS_INVALID_INPUT

/* A session "s" with state k=1 and one event, to prove nothing is lost. */
static bool seed(mss_store *st) {
  mss_buf b = {NULL, 0};
  if (mss_session_create(st, JSON("{\"id\":\"s\"}"), &b, NULL) != MSS_OK) return false;
  mss_buf_free(&b);
  if (mss_state_set(st, "s", "k", JSON("1"), NULL, NULL) != MSS_OK) return false;
  if (mss_event_append(st, "s", "st", JSON("{\"n\":1}"), &b, NULL) != MSS_OK) return false;
  mss_buf_free(&b);
  return true;
}

/* The seeded data is intact. */
static bool intact(mss_store *st) {
  mss_buf b = {NULL, 0};
  bool good = mss_state_get(st, "s", "k", &b, NULL, NULL) == MSS_OK && strcmp(b.data, "1") == 0;
  mss_buf_free(&b);
  good = good && mss_events_after(st, "s", "st", 0, 10, &b, NULL) == MSS_OK && count_of(b.data, "\"seq\":") == 1;
  mss_buf_free(&b);
  return good;
}

static void null_arguments(ctx *c) {
  mss_error *err = NULL;
  mss_store *st = c->store;
  CHECK(seed(st));
  mss_buf b = {NULL, 0};
  uint64_t u = 0;
  bool flag = false;
  const char *name = NULL;
  mss_store *out = NULL;
  mss_subscription *sub = NULL;

  FAILS(BAD, mss_store_open(NULL, &out, &err));
  FAILS(BAD, mss_store_open("memory://", NULL, &err));
  FAILS(BAD, mss_store_open_with("memory://", NULL, 5, NULL, &err));
  FAILS(BAD, mss_store_backend(NULL, &name, &err));
  FAILS(BAD, mss_store_backend(st, NULL, &err));

  FAILS(BAD, mss_session_create(NULL, NULL, 0, &b, &err));
  FAILS(BAD, mss_session_create(st, NULL, 0, NULL, &err));
  FAILS(BAD, mss_session_get(NULL, "s", &b, &err));
  FAILS(BAD, mss_session_get(st, NULL, &b, &err));
  FAILS(BAD, mss_session_get(st, "s", NULL, &err));
  FAILS(BAD, mss_session_update(st, NULL, JSON("{}"), &b, &err));
  FAILS(BAD, mss_session_update(st, "s", NULL, 2, &b, &err));
  FAILS(BAD, mss_session_update(st, "s", JSON("{}"), NULL, &err));
  FAILS(BAD, mss_session_touch(st, NULL, &b, &err));
  FAILS(BAD, mss_session_touch(st, "s", NULL, &err));
  FAILS(BAD, mss_session_delete(NULL, "s", &flag, &err));
  FAILS(BAD, mss_session_delete(st, NULL, &flag, &err));
  FAILS(BAD, mss_session_list(st, NULL, 10, NULL, &err));
  FAILS(BAD, mss_session_count(st, NULL, &err));
  FAILS(BAD, mss_session_count(NULL, &u, &err));

  FAILS(BAD, mss_state_get(st, "s", NULL, &b, &u, &err));
  FAILS(BAD, mss_state_get(st, NULL, "k", &b, &u, &err));
  FAILS(BAD, mss_state_get(st, "s", "k", NULL, &u, &err));
  FAILS(BAD, mss_state_set(st, "s", "k", NULL, 1, &u, &err));
  FAILS(BAD, mss_state_set(st, "s", NULL, JSON("2"), &u, &err));
  FAILS(BAD, mss_state_set_if_version(st, "s", "k", NULL, 0, 1, &u, &err));
  FAILS(BAD, mss_state_set_if_absent(st, NULL, "k", JSON("2"), &u, &err));
  FAILS(BAD, mss_state_update(st, "s", "k", NULL, NULL, &b, &u, &err));
  FAILS(BAD, mss_state_delete(st, "s", NULL, &flag, &err));
  FAILS(BAD, mss_state_keys(st, "s", NULL, &err));
  FAILS(BAD, mss_state_all(st, NULL, &b, &err));

  FAILS(BAD, mss_event_append(st, "s", NULL, JSON("1"), &b, &err));
  FAILS(BAD, mss_event_append(st, "s", "st", NULL, 0, &b, &err));
  FAILS(BAD, mss_event_append(st, "s", "st", JSON("1"), NULL, &err));
  FAILS(BAD, mss_event_append_json(st, "s", NULL, 0, &b, &err));
  FAILS(BAD, mss_events_after(st, "s", NULL, 0, 10, &b, &err));
  FAILS(BAD, mss_events_after(st, "s", "st", 0, 10, NULL, &err));
  FAILS(BAD, mss_events_replay(st, "s", NULL, 10, &b, &err));
  FAILS(BAD, mss_event_id_format(NULL, "st", 1, &b, &err));
  FAILS(BAD, mss_event_id_format("s", "st", 1, NULL, &err));
  FAILS(BAD, mss_event_id_parse(NULL, "s", &b, &u, &err));
  FAILS(BAD, mss_event_id_parse("1.c3Q.0000000000000000", "s", &b, NULL, &err));

  FAILS(BAD, mss_subscribe(st, "s", "st", 0, NULL, &err));
  FAILS(BAD, mss_subscribe(NULL, "s", "st", 0, &sub, &err));
  FAILS(BAD, mss_subscription_next(NULL, 10, &flag, &b, &err));
  FAILS(BAD, mss_cleanup_expired(NULL, NULL, &err));

  /* Without an error pointer: the status alone. */
  CHECK(mss_session_get(st, NULL, &b, NULL) == BAD);
  /* Outputs were never written. */
  CHECK(b.data == NULL && u == 0 && !flag && name == NULL && out == NULL && sub == NULL);

  /* NULL is accepted where documented. */
  mss_store_free(NULL);
  mss_subscription_free(NULL);
  mss_error_free(NULL);
  mss_buf_free(NULL);
  CHECK(mss_error_status(NULL) == BAD);
  CHECK(strcmp(mss_error_message(NULL), "") == 0);
  CHECK(strcmp(mss_error_code(NULL), "invalid_input") == 0);
  CHECK(intact(st));
}

static void invalid_utf8(ctx *c) {
  mss_error *err = NULL;
  mss_store *st = c->store;
  CHECK(seed(st));
  mss_buf b = {NULL, 0};
  const char bad_utf8[] = "s\xff\xfe";
  const char bad_json_utf8[] = "\"\xc3\x28\"";
  mss_store *out = NULL;
  FAILS(BAD, mss_store_open("memory://\xff", &out, &err));
  FAILS(BAD, mss_session_get(st, bad_utf8, &b, &err));
  FAILS(BAD, mss_state_set(st, "s", bad_utf8, JSON("1"), NULL, &err));
  FAILS(BAD, mss_state_set(st, "s", "k", bad_json_utf8, strlen(bad_json_utf8), NULL, &err));
  FAILS(BAD, mss_event_append(st, "s", "st\xc0", JSON("1"), &b, &err));
  FAILS(BAD, mss_event_append(st, "s", "st", bad_json_utf8, strlen(bad_json_utf8), &b, &err));
  FAILS(BAD, mss_events_after(st, "s", "\xe2\x82", 0, 10, &b, &err));
  FAILS(BAD, mss_event_id_parse("1.\xff.0", "s", &b, NULL, &err));
  /* A session id must be visible ASCII, even when valid UTF-8. */
  FAILS(BAD, mss_session_create(st, JSON("{\"id\":\"caf\xc3\xa9\"}"), &b, &err));
  CHECK(b.data == NULL && out == NULL);
  CHECK(intact(st));
}

static void invalid_json(ctx *c) {
  mss_error *err = NULL;
  mss_store *st = c->store;
  CHECK(seed(st));
  mss_buf b = {NULL, 0};
  const char *bad[] = {"", "{", "{'a':1}", "[1,]", "nul", "1 2", "{\"a\":}", "\"unterminated"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    FAILS(BAD, mss_state_set(st, "s", "k", JSON(bad[i]), NULL, &err));
    FAILS(BAD, mss_event_append(st, "s", "st", JSON(bad[i]), &b, &err));
    FAILS(BAD, mss_session_update(st, "s", JSON(bad[i]), &b, &err));
    FAILS(BAD, mss_session_create(st, JSON(bad[i]), &b, &err));
    FAILS(BAD, mss_event_append_json(st, "s", JSON(bad[i]), &b, &err));
  }
  /* A length that cuts valid JSON short is invalid JSON. */
  FAILS(BAD, mss_state_set(st, "s", "k", "{\"a\":1}", 5, NULL, &err));
  /* The message tells what was wrong. */
  mss_status s = mss_state_set(st, "s", "k", JSON("{oops"), NULL, &err);
  bool says = s == BAD && strstr(mss_error_message(err), "invalid JSON") != NULL;
  mss_error_free(err);
  err = NULL;
  CHECK(says);
  CHECK(b.data == NULL);
  CHECK(intact(st));
}

static void json_of_the_wrong_shape(ctx *c) {
  mss_error *err = NULL;
  mss_store *st = c->store;
  CHECK(seed(st));
  mss_buf b = {NULL, 0};
  mss_store *out = NULL;
  /* Session options. */
  FAILS(BAD, mss_session_create(st, JSON("[]"), &b, &err));
  FAILS(BAD, mss_session_create(st, JSON("{\"id\":42}"), &b, &err));
  FAILS(BAD, mss_session_create(st, JSON("{\"metadata\":[1]}"), &b, &err));
  FAILS(BAD, mss_session_create(st, JSON("{\"ttl_ms\":-5}"), &b, &err));
  FAILS(BAD, mss_session_create(st, JSON("{\"ttl_ms\":0}"), &b, &err));
  FAILS(BAD, mss_session_create(st, JSON("{\"idd\":\"x\"}"), &b, &err));
  /* A metadata patch must be an object. */
  FAILS(BAD, mss_session_update(st, "s", JSON("[1,2]"), &b, &err));
  FAILS(BAD, mss_session_update(st, "s", JSON("\"str\""), &b, &err));
  /* Event objects. */
  FAILS(BAD, mss_event_append_json(st, "s", JSON("{\"data\":1}"), &b, &err));
  FAILS(BAD, mss_event_append_json(st, "s", JSON("{\"stream_id\":1}"), &b, &err));
  FAILS(BAD, mss_event_append_json(st, "s", JSON("{\"stream_id\":\"a\",\"retry_ms\":\"soon\"}"), &b, &err));
  FAILS(BAD, mss_event_append_json(st, "s", JSON("{\"stream_id\":\"a\",\"extra\":1}"), &b, &err));
  FAILS(BAD, mss_event_append_json(st, "s", JSON("{\"stream_id\":\"a\",\"event_type\":\"x\\ny\"}"), &b, &err));
  /* Store options. */
  FAILS(BAD, mss_store_open_with("memory://", JSON("{\"ttl_ms\":\"30m\"}"), &out, &err));
  FAILS(BAD, mss_store_open_with("memory://", JSON("{\"nope\":1}"), &out, &err));
  FAILS(BAD, mss_store_open_with("memory://", JSON("{\"max_sessions\":0}"), &out, &err));
  FAILS(BAD, mss_store_open_with("memory://", JSON("[]"), &out, &err));
  mss_status s = mss_session_update(st, "s", JSON("[1]"), &b, &err);
  bool says = s == BAD && strstr(mss_error_message(err), "wrong shape") != NULL;
  mss_error_free(err);
  err = NULL;
  CHECK(says);
  CHECK(b.data == NULL && out == NULL);
  CHECK(intact(st));
}

static void invalid_ids_keys_and_limits(ctx *c) {
  mss_error *err = NULL;
  mss_store *st = c->store;
  CHECK(seed(st));
  mss_buf b = {NULL, 0};
  char long_id[300];
  memset(long_id, 'a', 256);
  long_id[256] = '\0';
  FAILS(BAD, mss_session_get(st, "", &b, &err));
  FAILS(BAD, mss_session_get(st, "has space", &b, &err));
  FAILS(BAD, mss_session_get(st, long_id, &b, &err));
  FAILS(BAD, mss_state_set(st, "s", "", JSON("1"), NULL, &err));
  FAILS(BAD, mss_state_set(st, "s", "tab\there", JSON("1"), NULL, &err));
  FAILS(BAD, mss_event_append(st, "s", long_id, JSON("1"), &b, &err));
  FAILS(BAD, mss_events_after(st, "s", "st", 0, 0, &b, &err));
  FAILS(BAD, mss_events_replay(st, "s", "not-a-wire-id", 10, &b, &err));
  CHECK(b.data == NULL);
  CHECK(intact(st));
}

static void oversize_payloads(ctx *c) {
  mss_error *err = NULL;
  CHECK(seed(c->store));
  mss_store *st = NULL;
  OK(ns_open(c, "max_payload_bytes=1024", &st));
  /* memory:// opens a new, empty store: seed it too. */
  bool seeded = c->shared || seed(st);
  /* A 1025-byte JSON string: valid JSON, one byte over the limit. */
  char *big = malloc(1026);
  CHECK(big != NULL);
  memset(big, 'x', 1025);
  big[0] = '"';
  big[1024] = '"';
  big[1025] = '\0';
  mss_buf b = {NULL, 0};
  mss_status r[5];
  r[0] = mss_state_set(st, "s", "k", big, 1025, NULL, NULL);
  r[1] = mss_event_append(st, "s", "st", big, 1025, &b, NULL);
  char *obj = malloc(1100);
  CHECK(obj != NULL);
  snprintf(obj, 1100, "{\"v\":%s}", big);
  r[2] = mss_session_update(st, "s", obj, strlen(obj), &b, NULL);
  char *ev = malloc(1200);
  CHECK(ev != NULL);
  snprintf(ev, 1200, "{\"stream_id\":\"st\",\"data\":%s}", big);
  r[3] = mss_event_append_json(st, "s", ev, strlen(ev), &b, NULL);
  /* Exactly at the limit is fine. */
  r[4] = mss_state_set(st, "s", "k2", big, 1024 - 1, NULL, NULL); /* invalid: cut string */
  big[1023] = '"';
  mss_status at_limit = mss_state_set(st, "s", "k2", big, 1024, NULL, &err);
  bool kept = intact(st);
  mss_store_free(st);
  free(big);
  free(obj);
  free(ev);
  CHECK(seeded && kept);
  CHECK(r[0] == MSS_LIMIT_EXCEEDED);
  CHECK(r[1] == MSS_LIMIT_EXCEEDED);
  CHECK(r[2] == MSS_LIMIT_EXCEEDED);
  CHECK(r[3] == MSS_LIMIT_EXCEEDED);
  CHECK(r[4] == MSS_INVALID_INPUT);
  OK(at_limit);
  CHECK(b.data == NULL);
  CHECK(intact(c->store));
}

static int32_t huge_value(void *user, const char *current, size_t len, const char **out, size_t *out_len) {
  (void)current, (void)len;
  *out = user;
  *out_len = strlen(user);
  return 0;
}

static void oversize_from_update_callback(ctx *c) {
  mss_error *err = NULL;
  CHECK(seed(c->store));
  mss_store *st = NULL;
  OK(ns_open(c, "max_payload_bytes=16", &st));
  bool seeded = c->shared || seed(st);
  char value[] = "\"0123456789abcdefghij\"";
  mss_status r = mss_state_update(st, "s", "k", huge_value, value, NULL, NULL, &err);
  bool good = r == MSS_LIMIT_EXCEEDED && err != NULL && mss_error_status(err) == MSS_LIMIT_EXCEEDED;
  mss_error_free(err);
  err = NULL;
  bool kept = intact(st);
  mss_store_free(st);
  CHECK(seeded && kept);
  CHECK(good);
  CHECK(intact(c->store));
}

static void unknown_schemes_and_bad_urls(ctx *c) {
  mss_error *err = NULL;
  mss_store *out = NULL;
  FAILS(BAD, mss_store_open("mysql://localhost/db", &out, &err));
  FAILS(BAD, mss_store_open("no-scheme-here", &out, &err));
  FAILS(BAD, mss_store_open("", &out, &err));
  FAILS(BAD, mss_store_open("memory://?ttl=forever", &out, &err));
  FAILS(BAD, mss_store_open("memory://?unknown_option=1", &out, &err));
  FAILS(BAD, mss_store_open("memory://some/path", &out, &err));
  mss_status s = mss_store_open("mysql://localhost/db", &out, &err);
  bool says = s == BAD && strstr(mss_error_message(err), "scheme") != NULL;
  mss_error_free(err);
  err = NULL;
  CHECK(says);
  CHECK(out == NULL);
}

static void unreachable_sqlite_path(ctx *c) {
  mss_error *err = NULL;
  mss_store *out = NULL;
  FAILS(MSS_UNAVAILABLE, mss_store_open("sqlite:///nonexistent-dir-mss/x/y.db", &out, &err));
  CHECK(out == NULL);
}

static void use_after_free_is_detected(ctx *c) {
  mss_error *err = NULL;
  mss_store *st = NULL;
  OK(mss_store_open("memory://", &st, &err));
  mss_buf b = {NULL, 0};
  OK(mss_session_create(st, JSON("{\"id\":\"x\"}"), &b, &err));
  mss_buf_free(&b);
  mss_subscription *sub = NULL;
  OK(mss_subscribe(st, "x", "s", 0, &sub, &err));
  mss_store_free(st);

  /* The store handle is refused, not dereferenced. */
  FAILS(BAD, mss_session_get(st, "x", &b, &err));
  FAILS(BAD, mss_state_set(st, "x", "k", JSON("1"), NULL, &err));
  FAILS(BAD, mss_event_append(st, "x", "s", JSON("1"), &b, &err));
  mss_status s = mss_session_count(st, NULL, &err);
  (void)s;
  mss_error_free(err);
  err = NULL;
  uint64_t n = 0;
  s = mss_session_count(st, &n, &err);
  bool says = s == BAD && strstr(mss_error_message(err), "freed") != NULL;
  mss_error_free(err);
  err = NULL;
  CHECK(says);
  mss_store_free(st); /* a second free is ignored */

  /* On memory://, a subscription keeps working after its store handle is
   * freed (the store handle itself is refused). */
  bool received = true;
  s = mss_subscription_next(sub, 10, &received, &b, &err);
  mss_subscription_free(sub);
  OK(s);
  CHECK(!received);
  FAILS(BAD, mss_subscription_next(sub, 10, &received, &b, &err));
  mss_subscription_free(sub);

  /* A handle of one type is not a handle of another, nor a forged one. */
  mss_store *other = NULL;
  OK(mss_store_open("memory://", &other, &err));
  FAILS(BAD, mss_subscription_next((mss_subscription *)other, 10, &received, &b, &err));
  mss_store_free(other);
  FAILS(BAD, mss_session_count((mss_store *)(uintptr_t)0xdeadbee0u, &n, &err));
  CHECK(b.data == NULL);
}

typedef struct reentry {
  mss_store *store;
  mss_status inner;
} reentry;

/* A callback that calls back into the library: refused, not deadlocked. */
static int32_t call_back_in(void *user, const char *current, size_t len, const char **out, size_t *out_len) {
  (void)current, (void)len, (void)out, (void)out_len;
  reentry *r = user;
  uint64_t n = 0;
  r->inner = mss_session_count(r->store, &n, NULL);
  return (int32_t)r->inner;
}

static void reentrant_call_from_callback_is_refused(ctx *c) {
  mss_error *err = NULL;
  mss_store *st = NULL;
  OK(mss_store_open("memory://", &st, &err));
  mss_buf b = {NULL, 0};
  mss_status created = mss_session_create(st, JSON("{\"id\":\"r\"}"), &b, &err);
  mss_buf_free(&b);
  reentry r = {st, MSS_OK};
  mss_status s = mss_state_update(st, "r", "k", call_back_in, &r, NULL, NULL, &err);
  /* The store still works afterwards. */
  uint64_t n = 0;
  mss_status after = mss_session_count(st, &n, NULL);
  mss_store_free(st);
  OK(created);
  CHECK(r.inner == MSS_INTERNAL);
  FAILS(MSS_INTERNAL, s);
  CHECK(after == MSS_OK && n == 1);
}

static void error_objects(ctx *c) {
  mss_error *err = NULL;
  mss_buf b = {NULL, 0};
  mss_store *st = NULL;
  OK(mss_store_open("memory://", &st, &err));
  mss_status s = mss_session_get(st, "missing", &b, &err);
  mss_store_free(st);
  CHECK(s == MSS_NOT_FOUND);
  CHECK(err != NULL);
  bool good = mss_error_status(err) == MSS_NOT_FOUND && strcmp(mss_error_code(err), "not_found") == 0 &&
              strstr(mss_error_message(err), "missing") != NULL;
  mss_error_free(err);
  CHECK(good);
  /* Every status has its stable code. */
  const char *codes[] = {"ok", "not_found", "already_exists", "conflict", "invalid_input", "limit_exceeded",
                         "cursor_expired", "unavailable", "timeout", "backend", "internal"};
  for (int i = 0; i <= 10; i++) CHECK(strcmp(mss_status_code(i), codes[i]) == 0);
  CHECK(strcmp(mss_status_code(MSS_OTHER_ERROR), "unknown") == 0);
  CHECK(strcmp(mss_status_code(-1), "unknown") == 0);
  CHECK(MSS_OK == 0 && MSS_NOT_FOUND == 1 && MSS_INTERNAL == 10 && MSS_OTHER_ERROR == 1000);
}

static const test_case CASES[] = {
    {"null_arguments", null_arguments, true},
    {"invalid_utf8", invalid_utf8, true},
    {"invalid_json", invalid_json, true},
    {"json_of_the_wrong_shape", json_of_the_wrong_shape, true},
    {"invalid_ids_keys_and_limits", invalid_ids_keys_and_limits, true},
    {"oversize_payloads", oversize_payloads, true},
    {"oversize_from_update_callback", oversize_from_update_callback, true},
    {"unknown_schemes_and_bad_urls", unknown_schemes_and_bad_urls, false},
    {"unreachable_sqlite_path", unreachable_sqlite_path, false},
    {"use_after_free_is_detected", use_after_free_is_detected, false},
    {"reentrant_call_from_callback_is_refused", reentrant_call_from_callback_is_refused, false},
    {"error_objects", error_objects, false},
};

int main(void) { return RUN_TESTS("test_bad_input", CASES); }
