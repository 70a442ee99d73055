// CPU feature detection and the one-time choice of kernels.
#pragma once
#include <string>
#include <vector>
#include "qgemm/kernels.h"

namespace qgemm {

enum class Isa { scalar, avx2, avx_vnni, avx512_vnni, neon, neon_dotprod };

const char* isa_name(Isa isa);
// Parses "scalar", "avx2", "avx_vnni", "avx512_vnni", "neon", "neon_dotprod"; throws std::invalid_argument.
Isa parse_isa(const std::string& name);

struct CpuFeatures {
  bool avx2 = false;  // AVX2 + FMA + OS support for YMM state
  bool avx_vnni = false;  // AVX2 + AVX-VNNI (VEX vpdpbusd on ymm)
  bool avx512_vnni = false;  // AVX-512 F/BW/DQ/VL + VNNI + OS support for ZMM and mask state
  bool neon = false;
  bool dotprod = false;
};

const CpuFeatures& cpu_features();
// True if this build has kernels for `isa` and this CPU can run them.
bool isa_available(Isa isa);
// Every ISA this build and CPU can run, best last.
std::vector<Isa> available_isas();
// The kernel table for one ISA (must be available).
Kernels kernels_for(Isa isa);

// The active choice: the best available ISA, capped by the environment
// variable QGEMM_ISA if set. Decided once; throws std::runtime_error with a
// clear message if QGEMM_ISA names an unknown ISA or one the CPU lacks.
Isa active_isa();
const Kernels& active_kernels();

}  // namespace qgemm
