/*
 * A small test harness for the C tests of mcp_session_store.h.
 *
 * Each test is a function taking a `ctx *`. Tests marked per-backend run
 * once per backend named in MSS_TEST_BACKENDS (default "memory,sqlite"),
 * each in a fresh namespace, and are named BACKEND::test; the others run
 * once. The program prints one "ok"/"FAIL" line per test and a summary line
 * "# N passed, M failed", and exits non-zero if any failed.
 */
#ifndef MSS_TEST_HARNESS_H
#define MSS_TEST_HARNESS_H

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcp_session_store.h"

typedef struct ctx {
  const char *backend;  /* "memory", "sqlite", … or NULL for a plain test */
  bool shared;          /* two stores opened on one URL share data */
  char base_url[1024];  /* the namespace's URL, without extra options */
  char dir[256];        /* sqlite: the temporary directory */
  mss_store *store;     /* opened on base_url before a per-backend test */
  bool failed;
} ctx;

typedef struct test_case {
  const char *name;
  void (*fn)(ctx *);
  bool per_backend;
} test_case;

/* ---- checks ------------------------------------------------------------- */

static inline void fail_at(ctx *c, int line, const char *what, const char *detail) {
  c->failed = true;
  fprintf(stderr, "    line %d: %s%s%s\n", line, what, detail ? " -- " : "", detail ? detail : "");
}

/* Fail the test (and return from it) unless `cond`. */
#define CHECK(cond)                                  \
  do {                                               \
    if (!(cond)) {                                   \
      fail_at(c, __LINE__, "CHECK(" #cond ")", NULL); \
      return;                                        \
    }                                                \
  } while (0)

/* `call` must return MSS_OK; it may pass `&err` (an `mss_error *err = NULL`
 * declared in the test) to get the message printed on failure. */
#define OK(call)                                                          \
  do {                                                                    \
    mss_status s_ = (call);                                               \
    if (s_ != MSS_OK) {                                                   \
      char d_[600];                                                       \
      snprintf(d_, sizeof d_, "status %d (%s): %s", (int)s_,              \
               mss_status_code((int32_t)s_), mss_error_message(err));     \
      mss_error_free(err);                                                \
      err = NULL;                                                         \
      fail_at(c, __LINE__, #call, d_);                                    \
      return;                                                             \
    }                                                                     \
  } while (0)

/* `call` must fail with `expected`; if it passed `&err`, the error object
 * must carry the same status and a message. Frees it. */
#define FAILS(expected, call)                                              \
  do {                                                                     \
    mss_status s_ = (call);                                                \
    if (s_ != (expected)) {                                                \
      char d_[600];                                                        \
      snprintf(d_, sizeof d_, "expected %s, got status %d (%s): %s",       \
               #expected, (int)s_, mss_status_code((int32_t)s_),           \
               mss_error_message(err));                                    \
      mss_error_free(err);                                                 \
      err = NULL;                                                          \
      fail_at(c, __LINE__, #call, d_);                                     \
      return;                                                              \
    }                                                                      \
    if (err != NULL) {                                                     \
      bool good_ = mss_error_status(err) == (expected) &&                  \
                   strlen(mss_error_message(err)) > 0 &&                   \
                   strcmp(mss_error_code(err), mss_status_code((int32_t)(expected))) == 0; \
      mss_error_free(err);                                                 \
      err = NULL;                                                          \
      if (!good_) {                                                        \
        fail_at(c, __LINE__, #call, "error object does not match");        \
        return;                                                            \
      }                                                                    \
    }                                                                      \
  } while (0)

/* The JSON text `json` contains `needle` (the library writes compact JSON). */
#define HAS(json, needle) CHECK(strstr((json), (needle)) != NULL)
#define HAS_NOT(json, needle) CHECK(strstr((json), (needle)) == NULL)

/* ---- small JSON readers (for the library's compact output) -------------- */

/* The unsigned number after `"field":` at or after `from`, or UINT64_MAX. */
static inline uint64_t json_u64(const char *from, const char *field) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":", field);
  const char *p = strstr(from, pat);
  if (p == NULL) return UINT64_MAX;
  p += strlen(pat);
  if (*p < '0' || *p > '9') return UINT64_MAX;
  return strtoull(p, NULL, 10);
}

/* Copy the string value of `"field":"…"` (no escapes) into out. */
static inline bool json_str(const char *from, const char *field, char *out, size_t n) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":\"", field);
  const char *p = strstr(from, pat);
  if (p == NULL) return false;
  p += strlen(pat);
  const char *end = strchr(p, '"');
  if (end == NULL || (size_t)(end - p) >= n) return false;
  memcpy(out, p, (size_t)(end - p));
  out[end - p] = '\0';
  return true;
}

/* How many times `needle` occurs in `hay`. */
static inline size_t count_of(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) n++;
  return n;
}

static inline void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

/* Length of a NUL-terminated literal, for pointer + length arguments. */
#define JSON(s) (s), strlen(s)

/* ---- backends and namespaces ------------------------------------------- */

static inline uint64_t random_u64(void) {
  uint64_t v = 0;
  int fd = open("/dev/urandom", O_RDONLY);
  if (fd >= 0) {
    if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
    close(fd);
  }
  if (v == 0) v = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  return v;
}

static inline const char *env_or(const char *name, const char *fallback) {
  const char *v = getenv(name);
  return (v != NULL && *v != '\0') ? v : fallback;
}

static inline void add_param(char *url, size_t n, const char *param) {
  if (param == NULL || *param == '\0') return;
  size_t len = strlen(url);
  snprintf(url + len, n - len, "%c%s", strchr(url, '?') ? '&' : '?', param);
}

/* Each backend: how to make a fresh namespace URL. One entry per backend. */
static inline bool ns_memory(ctx *c) {
  snprintf(c->base_url, sizeof c->base_url, "memory://");
  return true;
}

static inline bool ns_sqlite(ctx *c) {
  snprintf(c->dir, sizeof c->dir, "%s/mss-c-XXXXXX", env_or("TMPDIR", "/tmp"));
  if (mkdtemp(c->dir) == NULL) return false;
  snprintf(c->base_url, sizeof c->base_url, "sqlite://%s/store.db", c->dir);
  return true;
}

static inline bool ns_postgres(ctx *c) {
  char param[64];
  snprintf(c->base_url, sizeof c->base_url, "%s",
           env_or("MSS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"));
  snprintf(param, sizeof param, "schema=mss_t_%016" PRIx64, random_u64());
  add_param(c->base_url, sizeof c->base_url, param);
  return true;
}

static inline bool ns_redis(ctx *c) {
  char param[64];
  snprintf(c->base_url, sizeof c->base_url, "%s",
           env_or("MSS_TEST_REDIS_URL", "redis://127.0.0.1:6379"));
  snprintf(param, sizeof param, "key_prefix=mss_t_%016" PRIx64 ":", random_u64());
  add_param(c->base_url, sizeof c->base_url, param);
  return true;
}

static inline bool ns_dynamodb(ctx *c) {
  snprintf(c->base_url, sizeof c->base_url,
           "dynamodb://mss_t_%016" PRIx64 "?endpoint=%s&region=us-east-1&create_table=true",
           random_u64(), env_or("MSS_TEST_DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"));
  return true;
}

typedef struct backend_kind {
  const char *name;
  bool shared;
  bool (*make_namespace)(ctx *);
} backend_kind;

static const backend_kind BACKENDS[] = {
    {"memory", false, ns_memory},
    {"sqlite", true, ns_sqlite},
    {"postgres", true, ns_postgres},
    {"redis", true, ns_redis},
    {"dynamodb", true, ns_dynamodb},
};

/* The namespace URL with extra query parameters ("" for none). */
static inline void ns_url(const ctx *c, const char *params, char *out, size_t n) {
  snprintf(out, n, "%s", c->base_url);
  add_param(out, n, params);
}

/* Open another store on the namespace, with extra parameters. */
static inline mss_status ns_open(const ctx *c, const char *params, mss_store **out) {
  char url[1200];
  ns_url(c, params, url, sizeof url);
  return mss_store_open(url, out, NULL);
}

/* Remove what a test left in a server's namespace (sessions, with their
 * state and events), or the SQLite files. */
static inline void ns_cleanup(ctx *c) {
  if (c->store != NULL && c->shared && c->dir[0] == '\0') {
    for (int round = 0; round < 100; round++) {
      mss_buf page = {NULL, 0};
      if (mss_session_list(c->store, NULL, 1000, &page, NULL) != MSS_OK) break;
      char id[300];
      const char *p = page.data;
      int n = 0;
      while ((p = strstr(p, "{\"id\":\"")) != NULL) {
        if (json_str(p, "id", id, sizeof id)) {
          mss_session_delete(c->store, id, NULL, NULL);
          n++;
        }
        p++;
      }
      mss_buf_free(&page);
      if (n == 0) break;
    }
  }
  mss_store_free(c->store);
  c->store = NULL;
  if (c->dir[0] != '\0') {
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    char path[400];
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
      snprintf(path, sizeof path, "%s/store.db%s", c->dir, suffixes[i]);
      unlink(path);
    }
    rmdir(c->dir);
    c->dir[0] = '\0';
  }
}

/* ---- the runner ----------------------------------------------------------- */

static inline int run_tests(const char *program, const test_case *cases, size_t n) {
  int passed = 0, failed = 0;
  for (size_t i = 0; i < n; i++) {
    if (cases[i].per_backend) continue;
    ctx c;
    memset(&c, 0, sizeof c);
    cases[i].fn(&c);
    printf("%s - %s::%s\n", c.failed ? "FAIL" : "ok", program, cases[i].name);
    c.failed ? failed++ : passed++;
  }

  char names[256];
  snprintf(names, sizeof names, "%s", env_or("MSS_TEST_BACKENDS", "memory,sqlite"));
  char *save = NULL;
  for (char *name = strtok_r(names, ", ", &save); name != NULL; name = strtok_r(NULL, ", ", &save)) {
    const backend_kind *kind = NULL;
    for (size_t k = 0; k < sizeof BACKENDS / sizeof *BACKENDS; k++) {
      if (strcmp(BACKENDS[k].name, name) == 0) kind = &BACKENDS[k];
    }
    if (kind == NULL) {
      printf("FAIL - %s: MSS_TEST_BACKENDS names unknown backend \"%s\"\n", program, name);
      failed++;
      continue;
    }
    for (size_t i = 0; i < n; i++) {
      if (!cases[i].per_backend) continue;
      ctx c;
      memset(&c, 0, sizeof c);
      c.backend = kind->name;
      c.shared = kind->shared;
      mss_error *err = NULL;
      if (!kind->make_namespace(&c)) {
        fprintf(stderr, "    cannot create a namespace for %s\n", kind->name);
        c.failed = true;
      } else if (mss_store_open(c.base_url, &c.store, &err) != MSS_OK) {
        fprintf(stderr, "    cannot open %s: %s\n", c.base_url, mss_error_message(err));
        mss_error_free(err);
        c.failed = true;
      } else {
        cases[i].fn(&c);
      }
      ns_cleanup(&c);
      printf("%s - %s::%s::%s\n", c.failed ? "FAIL" : "ok", program, kind->name, cases[i].name);
      c.failed ? failed++ : passed++;
    }
  }
  printf("# %s: %d passed, %d failed\n", program, passed, failed);
  return failed == 0 ? 0 : 1;
}

#define RUN_TESTS(program, cases) run_tests((program), (cases), sizeof(cases) / sizeof *(cases))

#endif /* MSS_TEST_HARNESS_H */
