// Small vector helpers must inline into the kernels (a call would spill the
// tile's registers), whatever the compiler's heuristics decide at -O2.
#pragma once
#define QGEMM_INLINE inline __attribute__((always_inline))
