// The kernel table: everything an ISA provides, as plain function pointers.
// Each ISA's table is defined in that ISA's own translation units, compiled
// with that ISA's flags; nothing outside them may call an ISA kernel directly.
#pragma once
#include <cstddef>
#include <cstdint>

#include "qgemm/output_stage.h"

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
// Lines for a tile to prefetch while it computes: `rows` addresses `stride`
// bytes apart from `first`, up to `per_group` of them per K group; a call of
// several row tiles (GemmMicroFn) gives each tile the next `per_tile` of
// them. A hint the driver gives when the tile's own loads leave the memory
// idle (B packed inside the call: the source of the next panels); kernels
// may ignore it, and rows == 0 asks for nothing.
struct PrefetchRows {
  const uint8_t* first;
  ptrdiff_t stride;
  uint32_t rows, per_group, per_tile;
};

// What a kernel's epilogue reads for one tile (output_stage.h has the
// formulas): the zero-point algebra's terms, and the call's output stage with
// its per-column arrays moved to the tile's first column (nr values, zero
// padded) and its per-row arrays to the tile's first row.
struct EpilogueParams {
  const int32_t* col_term;  // [nr] za * colsum(B)[j] - int32 bias[j]
  const int32_t* col_zb;    // [nr] zero point of B per column, or nullptr if all zero
  const int32_t* row_term;  // [mr] rowsum(A)[i] - K * za
  // Per-row zero points of A (stored domain), nullptr when per tensor; col_term then excludes za.
  const int32_t* row_za;    // [mr]
  const int32_t* col_sum;   // [nr] colsum(B) of stored values, with row_za
  OutputStage out;          // bias unused (folded into col_term)
  PrefetchRows prefetch;    // not an epilogue parameter: the tile's one other hint
};

enum GemmFlags : int {
  kGemmAccumulate = 1,  // add to C instead of overwriting it (int32 output only)
  kGemmFinal = 2,       // last K block: apply the epilogue (always set for other kinds)
  // A hint: C is too large to be in cache, so the tile fetches its rows of C
  // while it multiplies, not when it writes them (kernels may ignore it).
  kGemmPrefetchOutput = 4,
};

// Packed layouts (see pack.h):
//   A: [k / kr][mr][kr] elements of the kernel's PackedA, zero padded.
//   B: [k / kr][nr][kr] int8 for one panel of nr columns, zero padded.
// The kernel computes an m x n corner (m <= mr, n <= nr) of the tile and
// writes it to c (elements of the output kind's type, rows ldc elements apart).
// m > mr runs the row tiles of m rows one after the other on the same B (one
// call per panel): A's packed tiles follow each other, C's rows go on, ep's
// per-row arrays hold m values, and each tile takes the next per_tile of the
// prefetch rows.
using GemmMicroFn = void (*)(size_t k_groups, const void* a, const int8_t* b, void* c,
                             size_t ldc, int m, int n, int flags, const EpilogueParams* ep);

// The same tile reading A where it is: rows of bytes (m of them, lda bytes
// apart, m > mr as above), K groups of 4 bytes read in place (k_groups * 4
// bytes of each row), uint8, or int8 (a_int8) flipped to uint8 as read.
// Only for kernels that store A as uint8 in groups of 4 (GemmKernel::
// micro_in_place), whose packing of A only reorders (and flips) its bytes.
using GemmMicroInPlaceFn = void (*)(size_t k_groups, const uint8_t* a, ptrdiff_t lda, bool a_int8, const int8_t* b,
                                    void* c, size_t ldc, int m, int n, int flags, const EpilogueParams* ep);

// The same epilogue on accumulators from memory (an m x n block, n <= nr,
// rows lda apart; row_term unused): the standalone requantize.
using EpilogueFn = void (*)(const int32_t* acc, size_t lda, void* c, size_t ldc, int m, int n,
                                const EpilogueParams* ep);

// ---- packing loops ------------------------------------------------------------
// The vectorized loops of packing (pack.h has the layouts), per ISA in
// kernels/<isa>/pack_<isa>.cpp; pack.cpp keeps the driver and the portable
// loops, which also take whatever a null entry or a partial count leaves.
struct Packers {
  // Rows [0, k) (k a multiple of kr, 2 or 4) x columns [0, width) (a multiple
  // of 16) of a B with unit column stride into the panel layout [k/kr][nr][kr],
  // bytes ^ flip: column j into the panel at dst + (j / nr) * panel_stride, as
  // its column j % nr (nr a multiple of 8; width <= nr needs no stride). Adds
  // the column sums of stored values into sums[0..width) and raises *max_abs
  // to the largest |stored value|. stream: a hint that the panels are not read
  // soon (non-temporal stores where dst and panel_stride allow, then a fence).
  void (*b_block)(const uint8_t* src, ptrdiff_t row_stride, size_t k, int width, int kr, int nr,
                  size_t panel_stride, bool stream, uint8_t flip, int8_t* dst, int32_t* sums, int* max_abs);
  // The columns b_block best takes per call (16, or 64: each row's 64-byte
  // lines read whole): narrower panels are packed that many columns per call.
  int b_block_columns;
  // Four rows of A (unit stride) as groups of 4 bytes ^ flip: groups [0, g)
  // of `full` into out (rows mr * 4 bytes apart per group); sums[i] = row i's
  // sum of (stored byte ^ to_unsigned) over them. Returns g.
  size_t (*a_four_rows_c4)(const uint8_t* const* src, size_t full, int mr, uint32_t flip, uint32_t to_unsigned,
                           uint8_t* out, uint32_t* sums);
  // One K quad of a panel from two K pairs (even, odd: nr columns of 2 bytes)
  // for columns [0, j) into dst (4 bytes per column). Returns j.
  size_t (*pairs_to_quads)(const int8_t* even, const int8_t* odd, size_t nr, int8_t* dst);
  // The largest of row[0..n) ^ flip for n a multiple of 16 (0 if n is 0).
  int (*max_byte)(const uint8_t* row, size_t n, uint8_t flip);
  // Four rows of A (unit stride) widened to int16 (zero-extended if is_u8,
  // else sign-extended) in pairs: pairs [0, g) of `full` into out (rows mr * 2
  // values apart per pair); sums[i] = row i's sum of stored values over them
  // (mod 2^32). Returns g.
  size_t (*a_four_rows_int16_pairs)(const uint8_t* const* src, size_t full, int mr, bool is_u8, int16_t* out,
                                    uint32_t* sums);
};

// The packing loops (named by the kernel records that consume them; the
// packed bytes are the same with every table): this build's baseline ISA's
// (SSE2 on x86-64, NEON on AArch64, none elsewhere), which every CPU of the
// architecture runs, and on x86-64 the baseline's with B's on AVX2
// (kernels/avx2/pack_avx2.cpp), for the kernels of AVX2 CPUs, and AVX2's
// with B's on AVX-512 (kernels/avx512_vnni/pack_avx512_vnni.cpp), for the
// AVX-512 VNNI kernel.
const Packers& baseline_packers();
#if defined(QGEMM_HAVE_AVX2)
const Packers& avx2_packers();
const Packers& avx512_packers();
#endif

// How a kernel stores A in its packed blocks (the layout above; B is int8
// for every kernel). The driver moves za with the flip (pack.h).
enum class PackedA {
  int16,  // both dtypes widened as they are (uint8 zero-extended)
  int8,   // uint8 flipped (b ^ 0x80 == b - 128)
  uint8,  // int8 flipped (b ^ 0x80 == b + 128): for u8 x s8 dot products (vpdpbusd)
};
constexpr int packed_a_bytes(PackedA a) { return a == PackedA::int16 ? 2 : 1; }

// Everything the driver needs to know about a microkernel (docs/architecture.md).
struct GemmKernel {
  const char* name;
  int mr, nr, kr;          // the tile and K group of both packed formats
  PackedA packed_a;        // how A is stored
  const Packers* packers;  // the loops that pack A and B for it
  GemmMicroFn micro;
  EpilogueFn epilogue;
  // A faster kernel that is exact only when its int16 pair sums cannot
  // saturate: 2 * max(stored A) * max|stored B| <= 32767 (vpmaddubsw). The
  // driver takes it on inputs whose ranges prove that (choose_kernel, gemm.h).
  const GemmKernel* proven_range = nullptr;
  // The tile on A unpacked (see GemmMicroInPlaceFn), or nullptr. The driver
  // takes it for an A of unit column stride and K a multiple of kr when no
  // zero point of B needs A's row sums: no packing of A at all.
  GemmMicroInPlaceFn micro_in_place = nullptr;
};

struct Kernels {
  const char* isa;
  QuantizeKernels quant;
  GemmKernel gemm;
};

const Kernels& scalar_kernels();
const GemmKernel& scalar_gemm_kernel();
#if defined(QGEMM_HAVE_AVX2)
const QuantizeKernels& avx2_quantize_kernels();
const GemmKernel& avx2_gemm_kernel();
const GemmKernel& avx2_assuming_int16_pair_sums_gemm_kernel();
const GemmKernel& avx512_vnni_gemm_kernel();
const QuantizeKernels& avx512_vnni_quantize_kernels();
#endif
#if defined(QGEMM_HAVE_AVX_VNNI)
const GemmKernel& avx_vnni_gemm_kernel();
#endif
#if defined(QGEMM_HAVE_NEON)
const QuantizeKernels& neon_quantize_kernels();
const GemmKernel& neon_gemm_kernel();
const GemmKernel& neon_dotprod_gemm_kernel();
#endif

}  // namespace qgemm
