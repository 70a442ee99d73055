// Partial vectors for primitive sets without masked loads and stores (AVX2,
// NEON; see output_stage_vector.h): Live is the count of live lanes, whole
// vectors take the plain load and store, others go through a stack copy of
// their live lanes (the rest read as 0 and are never written).
// Internal linkage: each ISA's translation unit gets its own copy.
#pragma once
#include <cstdint>
#include <cstring>

#include "qgemm/kernels/always_inline.h"

namespace qgemm {
namespace {

template <class V>
QGEMM_INLINE int live_count(int n) {
  return n < 0 ? 0 : n > V::kLanes ? V::kLanes : n;
}

template <class V>
QGEMM_INLINE typename V::Int load_live_by_copy(const int32_t* p, int n) {
  if (n == V::kLanes) return V::load(p);
  alignas(sizeof(typename V::Int)) int32_t tmp[V::kLanes] = {};
  std::memcpy(tmp, p, n * sizeof(int32_t));
  return V::load(tmp);
}

template <class V>
QGEMM_INLINE void store_live_by_copy(int32_t* p, typename V::Int v, int n) {
  if (n == V::kLanes) return V::store(p, v);
  alignas(sizeof(typename V::Int)) int32_t tmp[V::kLanes];
  V::store(tmp, v);
  std::memcpy(p, tmp, n * sizeof(int32_t));
}

}  // namespace
}  // namespace qgemm
