// The kernel table: everything an ISA provides, as plain function pointers.
// Each ISA's table is defined in that ISA's own translation units, compiled
// with that ISA's flags; nothing outside them may call an ISA kernel directly.
#pragma once
#include <cstddef>
#include <cstdint>

namespace qgemm {

// ---- quantize / dequantize -------------------------------------------------
// Per-tensor: one scale and zero point for all n elements.
// Per-element ("vec"): scale[i], zero_point[i] for element i (used for
// per-channel quantization along the last axis, one row at a time).
struct QuantizeKernels {
  void (*f32_to_s8)(const float* x, int8_t* y, size_t n, float scale, int32_t zp);
  void (*f32_to_u8)(const float* x, uint8_t* y, size_t n, float scale, int32_t zp);
  void (*f32_to_s8_vec)(const float* x, int8_t* y, size_t n, const float* scale, const int32_t* zp);
  void (*f32_to_u8_vec)(const float* x, uint8_t* y, size_t n, const float* scale, const int32_t* zp);
  void (*s8_to_f32)(const int8_t* q, float* y, size_t n, float scale, int32_t zp);
  void (*u8_to_f32)(const uint8_t* q, float* y, size_t n, float scale, int32_t zp);
  void (*s8_to_f32_vec)(const int8_t* q, float* y, size_t n, const float* scale, const int32_t* zp);
  void (*u8_to_f32_vec)(const uint8_t* q, float* y, size_t n, const float* scale, const int32_t* zp);
};

// ---- GEMM microkernel --------------------------------------------------------
// Zero-point corrections applied on the last K block, while the tile is in
// registers: C[i][j] = acc[i][j] - col_term[j] - col_zb[j] * row_term[i].
struct GemmEpilogue {
  const int32_t* col_term;  // [nr] za * colsum(B)[j]
  const int32_t* col_zb;    // [nr] zero point of B per column, or nullptr if all zero
  const int32_t* row_term;  // [mr] rowsum(A)[i] - K * za
};

enum GemmFlags : int {
  kGemmAccumulate = 1,  // add to C instead of overwriting it
  kGemmFinal = 2,       // last K block: apply the epilogue
};

// Packed layouts (see pack.h):
//   A: [k / kr][mr][kr] elements of a_bytes each (int16 or int8), zero padded.
//   B: [k / kr][nr][kr] int8 for one panel of nr columns, zero padded.
// The kernel computes an m x n corner (m <= mr, n <= nr) of the tile.
using GemmMicroFn = void (*)(size_t k_groups, const void* a, const int8_t* b, int32_t* c,
                             size_t ldc, int m, int n, int flags, const GemmEpilogue* ep);

struct GemmKernel {
  const char* name;
  int mr, nr, kr;
  int a_bytes;       // 2: A widened to int16 (u8 zero-extended); 1: A kept as int8
  GemmMicroFn micro;
};

struct Kernels {
  const char* isa;
  QuantizeKernels quant;
  GemmKernel gemm;
};

const Kernels& scalar_kernels();
#if defined(QGEMM_HAVE_AVX2)
const QuantizeKernels& avx2_quantize_kernels();
const GemmKernel& avx2_gemm_kernel();
#endif
#if defined(QGEMM_HAVE_NEON)
const QuantizeKernels& neon_quantize_kernels();
const GemmKernel& neon_gemm_kernel();
const GemmKernel& neondot_gemm_kernel();
#endif

}  // namespace qgemm
