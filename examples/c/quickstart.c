/*
 * Quickstart for the C ABI of mcp-session-store: create a session, keep some
 * state, append SSE events on two streams, then let a client "reconnect"
 * with the id of the last event it saw and replay what it missed on that
 * stream.
 *
 * Build (see ffi/README.md):
 *   cargo build -p mcp-session-store-ffi
 *   cc -std=c11 -Iffi/include examples/c/quickstart.c \
 *      -L"$TARGET_DIR" -lmcp_session_store -Wl,-rpath,"$TARGET_DIR" -o quickstart
 *   ./quickstart [STORE_URL]        # default: memory://
 */
#include <stdio.h>
#include <string.h>

#include "mcp_session_store.h"

/* Print the error of a failed call and stop. */
static int fail(const char *what, mss_status status, mss_error *err) {
  fprintf(stderr, "%s failed: %s: %s\n", what, mss_status_code(status), mss_error_message(err));
  mss_error_free(err);
  return 1;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "memory://";
  mss_error *err = NULL;
  mss_status st;

  if (mss_version() != MSS_VERSION_NUMBER) {
    fprintf(stderr, "header %s does not match library %s\n", MSS_VERSION_STRING, mss_version_string());
    return 1;
  }

  mss_store *store = NULL;
  if ((st = mss_store_open(url, &store, &err)) != MSS_OK) return fail("mss_store_open", st, err);

  /* A session with a generated id (UUID v4). */
  mss_buf session = {NULL, 0};
  const char *opts = "{\"metadata\":{\"client\":\"quickstart\"}}";
  if ((st = mss_session_create(store, opts, strlen(opts), &session, &err)) != MSS_OK) {
    mss_store_free(store);
    return fail("mss_session_create", st, err);
  }
  char id[256] = {0};
  const char *p = strstr(session.data, "\"id\":\"");
  if (p != NULL) sscanf(p + 6, "%255[^\"]", id);
  printf("session: %s\n", session.data);
  mss_buf_free(&session);

  /* State: per key, versioned. */
  const char *user = "{\"name\":\"ada\"}";
  uint64_t version = 0;
  if ((st = mss_state_set(store, id, "user", user, strlen(user), &version, &err)) != MSS_OK) {
    mss_store_free(store);
    return fail("mss_state_set", st, err);
  }
  printf("state user set at version %llu\n", (unsigned long long)version);

  /* Events on the POST stream "2" and the standalone GET stream. */
  char last_seen[128] = {0};
  for (int i = 1; i <= 6; i++) {
    char data[160];
    snprintf(data, sizeof data,
             "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":%d}}", i);
    const char *stream = (i % 2) ? "2" : "_GET_stream";
    mss_buf event = {NULL, 0};
    if ((st = mss_event_append(store, id, stream, data, strlen(data), &event, &err)) != MSS_OK) {
      mss_store_free(store);
      return fail("mss_event_append", st, err);
    }
    /* The client saw the first event of stream "2", then lost the connection. */
    if (i == 1) {
      const char *w = strstr(event.data, "\"id\":\"");
      if (w != NULL) sscanf(w + 6, "%127[^\"]", last_seen);
    }
    mss_buf_free(&event);
  }

  /* Reconnect with Last-Event-ID: replay only stream "2", after that event. */
  printf("client reconnects with Last-Event-ID: %s\n", last_seen);
  mss_buf page = {NULL, 0};
  if ((st = mss_events_replay(store, id, last_seen, 100, &page, &err)) != MSS_OK) {
    mss_store_free(store);
    return fail("mss_events_replay", st, err);
  }
  printf("missed events of stream \"2\": %s\n", page.data);
  mss_buf_free(&page);

  bool deleted = false;
  if ((st = mss_session_delete(store, id, &deleted, &err)) != MSS_OK) {
    mss_store_free(store);
    return fail("mss_session_delete", st, err);
  }
  printf("session deleted: %s\n", deleted ? "yes" : "no");
  mss_store_free(store);
  return 0;
}
