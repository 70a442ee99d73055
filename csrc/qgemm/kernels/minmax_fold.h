// The rule every minmax kernel follows, in scalar form: a value replaces the
// running minimum (maximum) only if it compares below (above) it, so NaN,
// which compares false, never does. Vector kernels use it for their lanes
// and their last elements. Internal linkage: each ISA's translation unit
// gets its own copy (no cross-ISA ODR merging).
#pragma once
#include <cstddef>

namespace qgemm {
namespace {

inline float fold_min(const float* v, size_t n, float m) {
  for (size_t i = 0; i < n; ++i) m = v[i] < m ? v[i] : m;
  return m;
}

inline float fold_max(const float* v, size_t n, float m) {
  for (size_t i = 0; i < n; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

}  // namespace
}  // namespace qgemm
