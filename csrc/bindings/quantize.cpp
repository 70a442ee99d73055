// quantize / dequantize with given parameters, and dynamic quantization.
#include "convert.h"
#include "qgemm/cpu.h"

namespace qgemm::bindings {

namespace {

// Per-channel parameters: one float32 scale and int32 zero point per channel.
struct ChannelParams {
  F32 scale;
  I32 zp;
};

void check_layout(size_t n, size_t channels, size_t inner, const ChannelParams& p) {
  require(channels >= 1 && inner >= 1, "channels and inner must be >= 1");
  require(static_cast<size_t>(p.scale.size()) == channels && static_cast<size_t>(p.zp.size()) == channels,
          "scale and zero_point need one value per channel");
  require(n % (channels * inner) == 0, "size is not a multiple of channels * inner");
}

void py_quantize(py::array x, py::array out, size_t channels, size_t inner, F32 scale, I32 zp) {
  require(is_dtype(x, 'f', 4) && c_contiguous(x), "x must be C-contiguous float32");
  require(c_contiguous(out) && out.writeable(), "out must be C-contiguous and writeable");
  require(x.size() == out.size(), "x and out differ in size");
  const QDtype dt = qdtype_of(out);
  const size_t n = static_cast<size_t>(x.size());
  check_layout(n, channels, inner, {scale, zp});
  const float* xs = static_cast<const float*>(x.data());
  void* qs = out.mutable_data();
  py::gil_scoped_release nogil;
  quantize(xs, qs, dt, {n, channels, inner}, scale.data(), zp.data(), active_kernels().quant);
}

void py_dequantize(py::array q, py::array out, size_t channels, size_t inner, F32 scale, I32 zp) {
  require(is_dtype(out, 'f', 4) && c_contiguous(out) && out.writeable(),
          "out must be C-contiguous writeable float32");
  require(c_contiguous(q), "q must be C-contiguous");
  require(q.size() == out.size(), "q and out differ in size");
  const QDtype dt = qdtype_of(q);
  const size_t n = static_cast<size_t>(q.size());
  check_layout(n, channels, inner, {scale, zp});
  const void* qs = q.data();
  float* xs = static_cast<float*>(out.mutable_data());
  py::gil_scoped_release nogil;
  dequantize(qs, dt, xs, {n, channels, inner}, scale.data(), zp.data(), active_kernels().quant);
}

// Dynamic quantization of x (rows, k) into q (rows, k): scale and zero_point
// receive one value per row (per_row) or one.
void py_quantize_dynamic(py::array x, py::array q, py::array_t<float> scale, py::array_t<int32_t> zero_point,
                         int bits, bool symmetric, bool per_row) {
  require(is_dtype(x, 'f', 4) && c_contiguous(x) && x.ndim() == 2, "x must be 2-D C-contiguous float32");
  require(c_contiguous(q) && q.writeable() && q.ndim() == 2 && q.shape(0) == x.shape(0) &&
              q.shape(1) == x.shape(1),
          "q must be a writeable C-contiguous array shaped like x");
  require(bits >= 2 && bits <= 8, "bits must be in 2..8");
  const size_t rows = x.shape(0), k = x.shape(1);
  const size_t params = per_row ? rows : 1;
  require(scale.writeable() && c_contiguous(scale) && static_cast<size_t>(scale.size()) == params &&
              zero_point.writeable() && c_contiguous(zero_point) &&
              static_cast<size_t>(zero_point.size()) == params,
          "scale and zero_point need one value per row (per_row) or one");
  DynamicScheme scheme;
  scheme.dtype = qdtype_of(q);
  scheme.bits = bits;
  scheme.symmetric = symmetric;
  scheme.per_row = per_row;
  const float* xs = static_cast<const float*>(x.data());
  void* qs = q.mutable_data();
  float* ss = scale.mutable_data();
  int32_t* zs = zero_point.mutable_data();
  DynamicStatus status;
  {
    py::gil_scoped_release nogil;
    status = quantize_dynamic(xs, rows, k, scheme, qs, ss, zs, active_kernels().quant);
  }
  require_usable_range(status);
}

}  // namespace

void bind_quantize(py::module_& m) {
  m.def("quantize", &py_quantize);
  m.def("dequantize", &py_dequantize);
  m.def("quantize_dynamic", &py_quantize_dynamic);
}

}  // namespace qgemm::bindings
