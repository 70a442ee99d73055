// _qgemm.DynamicLinear: a dynamically quantized Linear's weights, held once,
// and its forward call (qgemm/linear.h).
#include "qgemm/linear.h"

#include <optional>

#include "convert.h"
#include "packed.h"
#include "qgemm/cpu.h"

namespace qgemm::bindings {

namespace {

// The weights and the arrays they point into, kept alive together.
class PyDynamicLinear {
 public:
  PyDynamicLinear(py::object packed, I32 zero_point, F32 scale, std::optional<F32> bias, float lo, float hi)
      : packed_(std::move(packed)), zero_point_(std::move(zero_point)), scale_(std::move(scale)),
        bias_(std::move(bias)) {
    const PackedB& b = packed_.cast<const PyPackedB&>().b;
    const size_t n = b.n;
    require(zero_point_.size() == 1 || static_cast<size_t>(zero_point_.size()) == n,
            "zero_point needs 1 or n values");
    require(static_cast<size_t>(scale_.size()) == n, "scale needs one value per column");
    require(!bias_ || static_cast<size_t>(bias_->size()) == n, "bias needs one value per column");
    require(!(lo > hi), "clamp needs lo <= hi");
    w_.packed = &b;
    w_.zero_point = zero_point_.data();
    w_.zero_point_per_column = zero_point_.size() != 1;
    w_.scale = scale_.data();
    w_.bias = bias_ ? bias_->data() : nullptr;
    w_.clamp = {lo, hi};
  }

  // x (rows, k) float32, C order, into y (rows, n) float32, C order.
  void forward(py::array x, py::array y, bool per_token, int act_bits) const {
    require(is_dtype(x, 'f', 4) && c_contiguous(x) && x.ndim() == 2, "x must be 2-D C-contiguous float32");
    require(is_dtype(y, 'f', 4) && c_contiguous(y) && y.writeable() && y.ndim() == 2,
            "y must be 2-D C-contiguous writeable float32");
    require(act_bits >= 2 && act_bits <= 8, "act_bits must be in 2..8");
    const size_t rows = x.shape(0), n = w_.packed->n;
    require(static_cast<size_t>(x.shape(1)) == w_.packed->k, "x and the weights differ in k");
    require(static_cast<size_t>(y.shape(0)) == rows && static_cast<size_t>(y.shape(1)) == n,
            "y has the wrong shape");
    DynamicScheme scheme;
    scheme.bits = act_bits;
    scheme.per_row = per_token;
    const float* xs = static_cast<const float*>(x.data());
    float* ys = static_cast<float*>(y.mutable_data());
    DynamicStatus status;
    {
      py::gil_scoped_release nogil;
      status = linear_dynamic(active_kernels(), w_, xs, rows, scheme, ys, n);
    }
    require_usable_range(status);
  }

 private:
  py::object packed_;
  I32 zero_point_;
  F32 scale_;
  std::optional<F32> bias_;
  DynamicLinearWeights w_;
};

}  // namespace

void bind_linear(py::module_& m) {
  py::class_<PyDynamicLinear>(m, "DynamicLinear")
      .def(py::init<py::object, I32, F32, std::optional<F32>, float, float>(), py::arg("packed"),
           py::arg("zero_point"), py::arg("scale"), py::arg("bias"), py::arg("lo"), py::arg("hi"))
      .def("forward", &PyDynamicLinear::forward, py::arg("x"), py::arg("y"), py::arg("per_token"),
           py::arg("act_bits"));
}

}  // namespace qgemm::bindings
