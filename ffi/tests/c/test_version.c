/* The header's version macros, mss_version() and Cargo.toml agree.
 * run.sh passes the crate version read from Cargo.toml as
 * -DMSS_CARGO_VERSION="x.y.z". */
#include "harness.h"

#ifndef MSS_CARGO_VERSION
#error "compile with -DMSS_CARGO_VERSION=\"x.y.z\" (the version in Cargo.toml)"
#endif

static void macros_match_the_library(ctx *c) {
  CHECK(mss_version() == MSS_VERSION_NUMBER);
  CHECK(MSS_VERSION_NUMBER == ((MSS_VERSION_MAJOR << 16) | (MSS_VERSION_MINOR << 8) | MSS_VERSION_PATCH));
  CHECK(strcmp(mss_version_string(), MSS_VERSION_STRING) == 0);
  char parts[64];
  snprintf(parts, sizeof parts, "%d.%d.%d", MSS_VERSION_MAJOR, MSS_VERSION_MINOR, MSS_VERSION_PATCH);
  CHECK(strncmp(MSS_VERSION_STRING, parts, strlen(parts)) == 0);
}

static void macros_match_cargo_toml(ctx *c) {
  CHECK(strcmp(MSS_VERSION_STRING, MSS_CARGO_VERSION) == 0);
  unsigned major = 0, minor = 0, patch = 0;
  CHECK(sscanf(MSS_CARGO_VERSION, "%u.%u.%u", &major, &minor, &patch) == 3);
  CHECK(major == MSS_VERSION_MAJOR && minor == MSS_VERSION_MINOR && patch == MSS_VERSION_PATCH);
  CHECK(mss_version() == ((major << 16) | (minor << 8) | patch));
}

static const test_case CASES[] = {
    {"macros_match_the_library", macros_match_the_library, false},
    {"macros_match_cargo_toml", macros_match_cargo_toml, false},
};

int main(void) { return RUN_TESTS("test_version", CASES); }
