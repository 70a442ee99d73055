#include "qgemm/output_stage.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace qgemm {

namespace {

void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(what);
}

}  // namespace

void check_output_stage(const OutputStage& s) {
  const bool float_kind = s.kind == OutputKind::float32 || s.kind == OutputKind::requantize_float;
  require(s.kind == OutputKind::int32 || float_kind || s.kind == OutputKind::requantize_fixed_point,
          "unknown output kind");
  require(!float_kind || s.scale, "scale is required");
  require(s.kind != OutputKind::requantize_fixed_point || (s.multiplier && s.shift),
          "multiplier and shift are required");
  require(!s.row_scale || float_kind, "row_scale needs a float output kind");
  if (output_element_bytes(s.kind) == 1) {
    const int32_t lo = s.out_u8 ? 0 : -128, hi = s.out_u8 ? 255 : 127;
    require(lo <= s.qmin && s.qmin <= s.qmax && s.qmax <= hi && lo <= s.zero_point && s.zero_point <= hi,
            "output zero point / clamp outside the output dtype");
  }
}

QuantizedMultiplier quantize_multiplier(double real) {
  if (!std::isfinite(real) || real < 0)
    throw std::invalid_argument("real multiplier must be finite and >= 0, got " + std::to_string(real));
  if (real == 0.0) return {0, 0};
  int shift = 0;
  const double q = std::frexp(real, &shift);  // real = q * 2^shift, q in [0.5, 1)
  // Half away from zero (q > 0); q * 2^31 + 0.5 is exact in double.
  int64_t q_fixed = static_cast<int64_t>(std::floor(q * 2147483648.0 + 0.5));
  if (q_fixed == (int64_t(1) << 31)) {
    q_fixed /= 2;
    ++shift;
  }
  if (shift < -31) return {0, 0};  // too small for 32 bits: it rounds to zero
  if (shift > 30)
    throw std::invalid_argument("real multiplier " + std::to_string(real) + " is too large (>= 2**30)");
  return {static_cast<int32_t>(q_fixed), static_cast<int32_t>(shift)};
}

void quantize_multipliers(const double* real, size_t n, int32_t* multiplier, int32_t* shift) {
  for (size_t j = 0; j < n; ++j) {
    // Per tensor, every value is the same: convert it once.
    const QuantizedMultiplier q =
        j > 0 && real[j] == real[j - 1] ? QuantizedMultiplier{multiplier[j - 1], shift[j - 1]}
                                        : quantize_multiplier(real[j]);
    multiplier[j] = q.multiplier;
    shift[j] = q.shift;
  }
}

}  // namespace qgemm
