// Dynamic quantization: parameters chosen from the data's own range, then
// the data quantized with them, per row (per token) or per tensor.
#pragma once
#include <cstddef>
#include <cstdint>

#include "qgemm/kernels.h"
#include "qgemm/quantize.h"

namespace qgemm {

// The codes of `bits` (2..8) bits of dtype: uint8 [0, 2^bits - 1], int8
// [-2^(bits-1), 2^(bits-1) - 1].
void bits_range(QDtype dtype, int bits, int32_t* qmin, int32_t* qmax);

// Parameters for data in [lo, hi], in the float32 arithmetic of
// qgemm.qparams_from_range (PyTorch's observers): the range widened to
// contain 0; affine: scale = max((hi - lo) / (qmax - qmin), eps),
// zp = clamp(qmin - round(lo / scale)); symmetric: scale = max(max(-lo, hi) /
// ((qmax - qmin) / 2), eps), zp = (qmin + qmax + 1) / 2 rounded down.
// lo > hi (no number) means the range [0, 0].
AffineParams range_qparams(float lo, float hi, int32_t qmin, int32_t qmax, bool symmetric);

struct DynamicScheme {
  QDtype dtype = QDtype::u8;
  int bits = 8;           // 2..8
  bool symmetric = false;
  bool per_row = true;    // else one scale and zero point for all rows
};

enum class DynamicStatus {
  ok,
  not_finite,  // a range holds an infinity, or is too wide for float32 (see below)
  no_number,   // the tensor (per tensor) or a row of k > 0 values (per row) is all NaN
};

// x: rows x k floats, C order; q: rows x k codes. Per row (or once), the
// range with NaN ignored, range_qparams, then q = clamp(round(x / scale) + zp)
// to the codes of `bits`. scale / zero_point receive rows values (per row) or
// one. A range is too wide when its scale, or any code of the dtype
// dequantized with it, would overflow float32. Anything but ok leaves q
// unspecified. Threaded over rows.
DynamicStatus quantize_dynamic(const float* x, size_t rows, size_t k, const DynamicScheme& scheme, void* q,
                      float* scale, int32_t* zero_point, const QuantizeKernels& kern);

}  // namespace qgemm
