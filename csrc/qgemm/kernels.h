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
  // Smallest and largest value, NaN ignored (as if absent); +inf / -inf if
  // there is no number at all. For choosing dynamic quantization parameters.
  void (*minmax_f32)(const float* x, size_t n, float* lo, float* hi);
};

// ---- GEMM microkernel --------------------------------------------------------
// What the epilogue writes. Every kind first applies the zero-point algebra
// to the exact int32 accumulator, while the tile is in registers:
//   acc[i][j] = sum_k a*b - col_term[j] - col_zb[j] * row_term[i]
// (an int32 bias is folded into col_term), and with one zero point of A per
// row (row_za) also - row_za[i] * col_sum[j]. Then:
enum GemmOutputKind : int {
  kOutInt32 = 0,       // C = acc
  kOutFloat32 = 1,     // C = clamp(float(acc) * col_scale[j] + col_offset[j], fmin, fmax)
  kOutQuantFloat = 2,  // C = clamp(rint((float(acc) + col_offset[j]) * col_scale[j]) + zp, qmin, qmax)
  kOutQuantFixed = 3,  // C = clamp(MultiplyByQuantizedMultiplier(acc, col_mult[j], col_shift[j]) + zp, qmin, qmax)
};
// Per-row scales (row_scale, kOutFloat32 and kOutQuantFloat only): col_scale
// is then b_scale[j] and the per-tensor formulas above apply element by
// element with a_scale = row_scale[i], all in float32:
//   kOutFloat32:    scale = row_scale[i] * col_scale[j]
//   kOutQuantFloat: ab = row_scale[i] * col_scale[j], scale = ab / y_scale,
//                   offset = col_offset[j] / ab (col_offset: a bias in real units)

struct GemmEpilogue {
  const int32_t* col_term;  // [nr] za * colsum(B)[j] - int32 bias[j]
  const int32_t* col_zb;    // [nr] zero point of B per column, or nullptr if all zero
  const int32_t* row_term;  // [mr] rowsum(A)[i] - K * za
  int kind;                 // GemmOutputKind
  const float* col_scale;   // [nr] kOutFloat32, kOutQuantFloat
  const float* col_offset;  // [nr] or nullptr (see the formulas above)
  const int32_t* col_mult;  // [nr] kOutQuantFixed: Q31 multiplier
  const int32_t* col_shift; // [nr] kOutQuantFixed: > 0 left, < 0 right
  int32_t zero_point;       // quantized outputs
  int32_t qmin, qmax;       // quantized clamp, activation included
  bool out_u8;              // quantized outputs: uint8 (else int8)
  float fmin, fmax;         // kOutFloat32 clamp (activation), +-inf if none
  // Per-row activation parameters (see above), nullptr when per tensor:
  const int32_t* row_za;    // [mr] zero point of A per row (stored domain); col_term then excludes za
  const int32_t* col_sum;   // [nr] colsum(B) of stored values, with row_za
  const float* row_scale;   // [mr] a_scale per row
  float y_scale;            // kOutQuantFloat with row_scale
};

enum GemmFlags : int {
  kGemmAccumulate = 1,  // add to C instead of overwriting it (kOutInt32 only)
  kGemmFinal = 2,       // last K block: apply the epilogue (always set for other kinds)
};

// Packed layouts (see pack.h):
//   A: [k / kr][mr][kr] elements of a_bytes each (int16, int8 or uint8), zero padded.
//   B: [k / kr][nr][kr] int8 for one panel of nr columns, zero padded.
// The kernel computes an m x n corner (m <= mr, n <= nr) of the tile and
// writes it to c (elements of the output kind's type, rows ldc elements apart).
using GemmMicroFn = void (*)(size_t k_groups, const void* a, const int8_t* b, void* c,
                             size_t ldc, int m, int n, int flags, const GemmEpilogue* ep);

// The same epilogue on accumulators from memory (an m x n block, n <= nr,
// rows lda apart; row_term unused): the standalone requantize.
using GemmEpilogueFn = void (*)(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n,
                                const GemmEpilogue* ep);

struct GemmKernel {
  const char* name;
  int mr, nr, kr;
  int a_bytes;       // 2: A widened to int16 (u8 zero-extended); 1: A kept as bytes
  GemmMicroFn micro;
  GemmEpilogueFn epilogue;
  // With a_bytes == 1: A stored as uint8 (s8 flipped, b ^ 0x80 == b + 128),
  // for u8 x s8 dot-product instructions (vpdpbusd); else as int8 (u8 flipped).
  bool a_unsigned = false;
  // A faster kernel that is exact only when its int16 pair sums cannot
  // saturate: 2 * max(stored A) * max|stored B| <= 32767 (vpmaddubsw). The
  // driver takes it on inputs whose ranges prove that (choose_kernel, gemm.h).
  const GemmKernel* proven_range = nullptr;
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
const GemmKernel& avx2_maddubs_gemm_kernel();
const GemmKernel& avx512vnni_gemm_kernel();
const QuantizeKernels& avx512_quantize_kernels();
#endif
#if defined(QGEMM_HAVE_AVXVNNI)
const GemmKernel& avxvnni_gemm_kernel();
#endif
#if defined(QGEMM_HAVE_NEON)
const QuantizeKernels& neon_quantize_kernels();
const GemmKernel& neon_gemm_kernel();
const GemmKernel& neondot_gemm_kernel();
#endif

}  // namespace qgemm
