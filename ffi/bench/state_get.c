/*
 * Per-call overhead of mss_state_get on memory://: one thread, one small key,
 * ITERATIONS calls (default 1000000), reported in ns per call: wall clock
 * (ns_per_call) and the calling thread's CPU time (cpu_ns_per_call, less
 * sensitive to other load on the machine). Build against
 * the release library (see ffi/README.md); not a test, and not run under
 * valgrind.
 *
 *   ./state_get [ITERATIONS]
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcp_session_store.h"

static double now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  long iterations = argc > 1 ? atol(argv[1]) : 1000000;
  if (iterations <= 0) iterations = 1000000;
  mss_store *store = NULL;
  mss_buf b = {NULL, 0};
  const char *opts = "{\"id\":\"bench\"}";
  const char *value = "{\"name\":\"ada\",\"n\":42}";
  if (mss_store_open("memory://", &store, NULL) != MSS_OK ||
      mss_session_create(store, opts, strlen(opts), &b, NULL) != MSS_OK ||
      mss_state_set(store, "bench", "user", value, strlen(value), NULL, NULL) != MSS_OK) {
    fprintf(stderr, "setup failed\n");
    return 1;
  }
  mss_buf_free(&b);

  /* Warm up (starts the runtime, fills caches). */
  for (int i = 0; i < 10000; i++) {
    mss_state_get(store, "bench", "user", &b, NULL, NULL);
    mss_buf_free(&b);
  }

  long errors = 0;
  double start = now_ns(CLOCK_MONOTONIC), start_cpu = now_ns(CLOCK_THREAD_CPUTIME_ID);
  for (long i = 0; i < iterations; i++) {
    uint64_t version = 0;
    if (mss_state_get(store, "bench", "user", &b, &version, NULL) != MSS_OK) errors++;
    mss_buf_free(&b);
  }
  double elapsed = now_ns(CLOCK_MONOTONIC) - start;
  double cpu = now_ns(CLOCK_THREAD_CPUTIME_ID) - start_cpu;
  mss_store_free(store);
  printf("{\"bench\":\"mss_state_get\",\"store\":\"memory://\",\"calls\":%ld,\"errors\":%ld,"
         "\"ns_per_call\":%.1f,\"cpu_ns_per_call\":%.1f,\"calls_per_sec\":%.0f}\n",
         iterations, errors, elapsed / (double)iterations, cpu / (double)iterations,
         (double)iterations / (elapsed / 1e9));
  return errors == 0 ? 0 : 1;
}
