// What every binding file shares: dtype checks on arrays, and the core's
// errors as Python exceptions. Argument checking with user-facing messages
// lives in python/qgemm; the checks here only keep a misuse of this private
// module from crashing.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // std::optional arguments

#include <cstdint>
#include <stdexcept>

#include "qgemm/quantize.h"
#include "qgemm/quantize_dynamic.h"

namespace qgemm::bindings {

namespace py = pybind11;

using I32 = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

inline bool is_dtype(const py::array& a, char kind, size_t itemsize) {
  return a.dtype().kind() == kind && static_cast<size_t>(a.itemsize()) == itemsize;
}

inline QDtype qdtype_of(const py::array& q) {
  if (is_dtype(q, 'i', 1)) return QDtype::s8;
  if (is_dtype(q, 'u', 1)) return QDtype::u8;
  throw py::type_error("expected an int8 or uint8 array");
}

inline void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(what);
}

inline bool c_contiguous(const py::array& a) { return a.flags() & py::array::c_style; }

// The rule for the data of dynamic quantization (NaN ignored, infinity and
// all-NaN refused), as ValueErrors.
inline void require_usable_range(DynamicStatus status) {
  require(status != DynamicStatus::not_finite,
          "x contains infinity, or a range too wide for float32 parameters: no finite scale represents it");
  require(status != DynamicStatus::no_number,
          "x has no finite value (all NaN) in a row or in all: there is no range to choose parameters from");
}

// Each binding file adds its part of the module.
void bind_quantize(py::module_& m);
void bind_packed(py::module_& m);
void bind_output_params(py::module_& m);
void bind_gemm(py::module_& m);
void bind_linear(py::module_& m);

}  // namespace qgemm::bindings
