/* One store handle used from several threads at once. */
#include "harness.h"

#include <pthread.h>

#define THREADS 4
#define APPENDS 50

typedef struct worker {
  mss_store *store;
  int index;
  uint64_t seqs[APPENDS];
  int done;
  mss_status status;
} worker;

static void *append_many(void *arg) {
  worker *w = arg;
  for (int i = 0; i < APPENDS; i++) {
    char data[64];
    snprintf(data, sizeof data, "{\"thread\":%d,\"i\":%d}", w->index, i);
    mss_buf e = {NULL, 0};
    w->status = mss_event_append(w->store, "conc", "s", data, strlen(data), &e, NULL);
    if (w->status != MSS_OK) return NULL;
    w->seqs[i] = json_u64(e.data, "seq");
    mss_buf_free(&e);
    w->done++;
  }
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static void four_threads_append_to_one_session(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"conc\"}"), &s, &err));
  mss_buf_free(&s);

  worker workers[THREADS];
  pthread_t threads[THREADS];
  for (int t = 0; t < THREADS; t++) {
    memset(&workers[t], 0, sizeof workers[t]);
    workers[t].store = c->store;
    workers[t].index = t;
    CHECK(pthread_create(&threads[t], NULL, append_many, &workers[t]) == 0);
  }
  for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);

  static uint64_t all[THREADS * APPENDS];
  size_t n = 0;
  for (int t = 0; t < THREADS; t++) {
    CHECK(workers[t].status == MSS_OK && workers[t].done == APPENDS);
    /* Each thread sees its own appends in increasing seq order. */
    for (int i = 0; i < APPENDS; i++) {
      if (i > 0) CHECK(workers[t].seqs[i] > workers[t].seqs[i - 1]);
      all[n++] = workers[t].seqs[i];
    }
  }
  /* Across threads: unique, and exactly 1..N (no gap, no duplicate). */
  qsort(all, n, sizeof *all, cmp_u64);
  for (size_t i = 0; i < n; i++) CHECK(all[i] == i + 1);

  /* The log replays all of them in seq order. */
  mss_buf page = {NULL, 0};
  OK(mss_events_after(c->store, "conc", "s", 0, 1000, &page, &err));
  CHECK(count_of(page.data, "\"seq\":") == n);
  uint64_t last = 0;
  for (const char *p = strstr(page.data, "\"seq\":"); p != NULL; p = strstr(p + 1, "\"seq\":")) {
    uint64_t seq = json_u64(p, "seq");
    if (seq <= last) break;
    last = seq;
  }
  mss_buf_free(&page);
  CHECK(last == n);
  s.data = NULL;
  OK(mss_session_get(c->store, "conc", &s, &err));
  CHECK(json_u64(s.data, "last_seq") == n);
  mss_buf_free(&s);
}

static int32_t increment(void *user, const char *current, size_t len, const char **out, size_t *out_len) {
  char *text = user; /* one buffer per thread */
  long n = 0;
  if (current != NULL) {
    char tmp[32];
    if (len >= sizeof tmp) return MSS_INVALID_INPUT;
    memcpy(tmp, current, len);
    tmp[len] = '\0';
    n = strtol(tmp, NULL, 10);
  }
  snprintf(text, 32, "%ld", n + 1);
  *out = text;
  *out_len = strlen(text);
  return 0;
}

typedef struct counter_worker {
  mss_store *store;
  char text[32];
  int ok;
} counter_worker;

static void *increment_many(void *arg) {
  counter_worker *w = arg;
  for (int i = 0; i < 25; i++) {
    if (mss_state_update(w->store, "ctr", "n", increment, w->text, NULL, NULL, NULL) == MSS_OK) w->ok++;
  }
  return NULL;
}

static void four_threads_increment_one_counter(ctx *c) {
  mss_error *err = NULL;
  mss_buf s = {NULL, 0};
  OK(mss_session_create(c->store, JSON("{\"id\":\"ctr\"}"), &s, &err));
  mss_buf_free(&s);
  counter_worker workers[THREADS];
  pthread_t threads[THREADS];
  for (int t = 0; t < THREADS; t++) {
    memset(&workers[t], 0, sizeof workers[t]);
    workers[t].store = c->store;
    CHECK(pthread_create(&threads[t], NULL, increment_many, &workers[t]) == 0);
  }
  for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
  for (int t = 0; t < THREADS; t++) CHECK(workers[t].ok == 25);
  mss_buf value = {NULL, 0};
  OK(mss_state_get(c->store, "ctr", "n", &value, NULL, &err));
  CHECK(strcmp(value.data, "100") == 0);
  mss_buf_free(&value);
}

/* A thread with a small stack (musl's default is 128 KiB; language runtimes
 * often use such threads) opens a store of its own and uses it: every call
 * runs on one of the library's worker threads (8 MiB stacks) while this one
 * waits, so nothing overflows. */
#define SMALL_STACK (128 * 1024)

typedef struct small_caller {
  const char *url;
  mss_status status;
  int step;
} small_caller;

static void *use_from_small_stack(void *arg) {
  small_caller *w = arg;
  mss_store *store = NULL;
  mss_buf out = {NULL, 0};
  w->step = 1;
  if ((w->status = mss_store_open(w->url, &store, NULL)) != MSS_OK) return NULL;
  w->step = 2;
  if ((w->status = mss_session_create(store, JSON("{\"id\":\"small\"}"), &out, NULL)) != MSS_OK) goto done;
  mss_buf_free(&out);
  w->step = 3;
  if ((w->status = mss_state_set(store, "small", "k", JSON("{\"n\":1}"), NULL, NULL)) != MSS_OK) goto done;
  w->step = 4;
  if ((w->status = mss_event_append(store, "small", "s", JSON("{\"i\":1}"), &out, NULL)) != MSS_OK) goto done;
  mss_buf_free(&out);
  w->step = 5;
  if ((w->status = mss_events_after(store, "small", "s", 0, 10, &out, NULL)) != MSS_OK) goto done;
  if (count_of(out.data, "\"seq\":") != 1) w->status = MSS_INTERNAL;
  mss_buf_free(&out);
  w->step = 6;
done:
  mss_store_free(store);
  return NULL;
}

static void a_thread_with_a_small_stack_can_call_everything(ctx *c) {
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0);
  CHECK(pthread_attr_setstacksize(&attr, SMALL_STACK) == 0);
  small_caller w = {c->base_url, MSS_OK, 0};
  pthread_t thread;
  CHECK(pthread_create(&thread, &attr, use_from_small_stack, &w) == 0);
  pthread_join(thread, NULL);
  pthread_attr_destroy(&attr);
  if (w.status != MSS_OK || w.step != 6) {
    char detail[64];
    snprintf(detail, sizeof detail, "status %d at step %d", (int)w.status, w.step);
    fail_at(c, __LINE__, "calls from a 128 KiB stack", detail);
  }
}

static const test_case CASES[] = {
    {"four_threads_append_to_one_session", four_threads_append_to_one_session, true},
    {"four_threads_increment_one_counter", four_threads_increment_one_counter, true},
    {"a_thread_with_a_small_stack_can_call_everything", a_thread_with_a_small_stack_can_call_everything, true},
};

int main(void) { return RUN_TESTS("test_threads", CASES); }
