// B packed for the active GEMM kernel, as the Python type _qgemm.PackedB.
// Immutable once built.
#pragma once
#include "qgemm/packed_b.h"

namespace qgemm::bindings {

struct PyPackedB {
  PackedB b;
};

}  // namespace qgemm::bindings
