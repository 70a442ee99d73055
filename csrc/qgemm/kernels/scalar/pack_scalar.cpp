// The scalar kernel's packing loops: none, pack.cpp's portable loops do
// everything (so the scalar path checks them end to end on every build).
#include "qgemm/kernels.h"

namespace qgemm {

const Packers& scalar_packers() {
  static const Packers p = {nullptr, nullptr, nullptr, nullptr};
  return p;
}

}  // namespace qgemm
