// _qgemm.OutputParams: an output stage built from quantization parameters by
// the core's init functions (qgemm/output_params.h), passed whole to gemm()
// and requantize().
#include "qgemm/output_params.h"

#include <optional>
#include <string>

#include "convert.h"

namespace qgemm::bindings {

namespace {

// A per-column array: nullptr for None, else exactly n values.
template <class T, int F>
const T* columns(const std::optional<py::array_t<T, F>>& v, size_t n, const char* name) {
  if (!v) return nullptr;
  if (static_cast<size_t>(v->size()) != n)
    throw std::invalid_argument(std::string(name) + " needs one value per column");
  return v->data();
}

ProductScales product_scales(size_t n, const F32& a_scale, bool a_per_row, const F32& b_scale) {
  require(a_per_row || a_scale.size() == 1, "a per-tensor a_scale is one value");
  require(b_scale.size() == 1 || static_cast<size_t>(b_scale.size()) == n, "b_scale needs 1 or n values");
  return {a_scale.data(), static_cast<size_t>(a_scale.size()), a_per_row, b_scale.data(),
          static_cast<size_t>(b_scale.size())};
}

StageBias stage_bias(size_t n, const std::optional<I32>& int32, const std::optional<F32>& real) {
  require(!(int32 && real), "one bias: int32 or real");
  return {columns(int32, n, "bias"), columns(real, n, "bias")};
}

using OptI32 = std::optional<I32>;
using OptF32 = std::optional<F32>;

}  // namespace

void bind_output_params(py::module_& m) {
  py::enum_<OutputKind>(m, "OutputKind")
      .value("int32", OutputKind::int32)
      .value("float32", OutputKind::float32)
      .value("requantize_float", OutputKind::requantize_float)
      .value("requantize_fixed_point", OutputKind::requantize_fixed_point);

  py::class_<OutputParams>(m, "OutputParams")
      .def_static(
          "int32", [](size_t n, OptI32 bias) { return int32_output(n, columns(bias, n, "bias")); },
          py::arg("n"), py::arg("bias") = py::none())
      .def_static(
          "dequantize",
          [](size_t n, F32 a_scale, bool a_per_row, F32 b_scale, OptI32 bias, OptF32 real_bias, float lo,
             float hi) {
            return dequantize_output(n, product_scales(n, a_scale, a_per_row, b_scale),
                                     stage_bias(n, bias, real_bias), {lo, hi});
          },
          py::arg("n"), py::arg("a_scale"), py::arg("a_per_row"), py::arg("b_scale"), py::arg("bias") = py::none(),
          py::arg("real_bias") = py::none(), py::arg("lo") = -INFINITY, py::arg("hi") = INFINITY)
      .def_static(
          "requantize_float",
          [](size_t n, F32 a_scale, bool a_per_row, F32 b_scale, float y_scale, int32_t y_zero_point, bool y_u8,
             OptI32 bias, OptF32 real_bias, float lo, float hi) {
            return requantize_float_output(n, product_scales(n, a_scale, a_per_row, b_scale),
                                           {y_scale, y_zero_point, y_u8}, stage_bias(n, bias, real_bias),
                                           {lo, hi});
          },
          py::arg("n"), py::arg("a_scale"), py::arg("a_per_row"), py::arg("b_scale"), py::arg("y_scale"),
          py::arg("y_zero_point"), py::arg("y_u8"), py::arg("bias") = py::none(),
          py::arg("real_bias") = py::none(), py::arg("lo") = -INFINITY, py::arg("hi") = INFINITY)
      .def_static(
          "requantize_fixed_point",
          [](size_t n, F32 a_scale, F32 b_scale, float y_scale, int32_t y_zero_point, bool y_u8, OptI32 bias,
             float lo, float hi) {
            return requantize_fixed_point_output(n, product_scales(n, a_scale, false, b_scale),
                                                 {y_scale, y_zero_point, y_u8}, columns(bias, n, "bias"),
                                                 {lo, hi});
          },
          py::arg("n"), py::arg("a_scale"), py::arg("b_scale"), py::arg("y_scale"), py::arg("y_zero_point"),
          py::arg("y_u8"), py::arg("bias") = py::none(), py::arg("lo") = -INFINITY, py::arg("hi") = INFINITY)
      .def_static(
          "by_multiplier",
          [](size_t n, F64 multiplier, bool per_row, bool fixed_point, int32_t zero_point, bool y_u8,
             OptI32 bias) {
            return requantize_by_multiplier(n, multiplier.data(), static_cast<size_t>(multiplier.size()),
                                            per_row, fixed_point, {1.0f, zero_point, y_u8},
                                            columns(bias, n, "bias"));
          },
          py::arg("n"), py::arg("multiplier"), py::arg("per_row"), py::arg("fixed_point"),
          py::arg("zero_point"), py::arg("y_u8"), py::arg("bias") = py::none())
      .def("clamp_codes", &OutputParams::clamp_codes, py::arg("lo"), py::arg("hi"))
      .def_property_readonly("kind", [](const OutputParams& p) { return p.stage().kind; })
      .def_property_readonly("columns", &OutputParams::columns)
      .def_property_readonly("rows", &OutputParams::rows)
      .def_property_readonly("qmin", [](const OutputParams& p) { return p.stage().qmin; })
      .def_property_readonly("qmax", [](const OutputParams& p) { return p.stage().qmax; });

  m.def("quantize_multiplier", [](double real) {
    const QuantizedMultiplier q = quantize_multiplier(real);
    return py::make_tuple(q.multiplier, q.shift);
  });
  m.def("quantize_multipliers", [](F64 real) {
    const size_t n = static_cast<size_t>(real.size());
    I32 mult(static_cast<py::ssize_t>(n)), shift(static_cast<py::ssize_t>(n));
    quantize_multipliers(real.data(), n, mult.mutable_data(), shift.mutable_data());
    return py::make_tuple(mult, shift);
  });
}

}  // namespace qgemm::bindings
