// Builds for an architecture with no vector packing loops (neither x86-64
// nor AArch64): pack.cpp's portable loops do everything.
#include "qgemm/kernels.h"

namespace qgemm {

const Packers& baseline_packers() {
  static const Packers p = {nullptr, nullptr, nullptr, nullptr, nullptr};
  return p;
}

}  // namespace qgemm
