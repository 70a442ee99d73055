// The pass/fail counters of the C++ test programs: check() counts a result
// and prints what failed; report() prints the totals and gives the exit code.
#pragma once
#include <cstdio>
#include <string>

inline int g_passed = 0, g_failed = 0;

inline void check(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

inline int report() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
