// gemm() over a packed or runtime B, matmul() (its int32 case, short), and
// requantize(): arrays in, the core's GemmOutput built from an OutputParams.
#include "qgemm/gemm.h"

#include <optional>
#include <vector>

#include "convert.h"
#include "packed.h"
#include "qgemm/cpu.h"
#include "qgemm/gemm_batched.h"
#include "qgemm/output_params.h"

namespace qgemm::bindings {

namespace {

// Where the stage `params` writes: `out`, rows x n of its kind's dtype, rows
// at a fixed stride.
GemmOutput make_output(py::array out, size_t rows, size_t n, const OutputParams& params) {
  GemmOutput o;
  static_cast<OutputStage&>(o) = params.stage();
  const bool dtype_ok = o.kind == OutputKind::int32     ? is_dtype(out, 'i', 4)
                        : o.kind == OutputKind::float32 ? is_dtype(out, 'f', 4)
                                                        : is_dtype(out, o.out_u8 ? 'u' : 'i', 1);
  require(dtype_ok && out.writeable() && out.ndim() == 2, "out has the wrong dtype or rank");
  require(static_cast<size_t>(out.shape(0)) == rows && static_cast<size_t>(out.shape(1)) == n,
          "out has the wrong shape");
  require(params.columns() == n, "the output stage was made for another number of columns");
  require(!o.row_scale || params.rows() == rows, "the output stage was made for another number of rows");
  const py::ssize_t esize = out.itemsize();
  require(out.strides(1) == esize && out.strides(0) >= 0 && out.strides(0) % esize == 0 &&
              (rows <= 1 || static_cast<size_t>(out.strides(0)) >= esize * n),
          "out rows must be contiguous");
  o.data = out.mutable_data();
  o.ldc = out.strides(0) ? static_cast<size_t>(out.strides(0) / esize) : n;
  return o;
}

// Item i of a batch of matrices: the byte offset of each index of the
// leading (batch) dimensions of x, in C order (zero strides repeat an item).
std::vector<ptrdiff_t> batch_offsets(const py::array& x) {
  const int lead = static_cast<int>(x.ndim()) - 2;
  size_t count = 1;
  for (int d = 0; d < lead; ++d) count *= static_cast<size_t>(x.shape(d));
  std::vector<ptrdiff_t> offsets(count);
  std::vector<size_t> index(lead > 0 ? lead : 0, 0);
  ptrdiff_t at = 0;
  for (size_t i = 0; i < count; ++i) {
    offsets[i] = at;
    for (int d = lead - 1; d >= 0; --d) {  // next index, odometer style
      at += x.strides(d);
      if (++index[d] < static_cast<size_t>(x.shape(d))) break;
      at -= x.strides(d) * x.shape(d);
      index[d] = 0;
    }
  }
  return offsets;
}

// out: (rows, n) where rows covers every row of a. za_rows: one zero point
// of A per row, or None for za.
// b a PackedB, or a plain int8/uint8 (k, n) array (packed inside the call,
// gemm_plain_b): a is (batch, m, k), any strides, its rows flattened.
// b a plain (..., k, n) array of batch dimensions: a is (..., m, k) with the
// same leading (batch) shape, any strides (zero ones for broadcast items);
// each item's B is packed inside the call (gemm_batched.h).
void py_gemm(py::array a, int32_t za, py::object b, I32 zb, py::array out, const OutputParams* params,
             std::optional<I32> za_rows) {
  const bool a_u8 = qdtype_of(a) == QDtype::u8;
  const bool packed = py::isinstance<PyPackedB>(b);
  py::array braw = packed ? py::array() : py::array(b);
  const bool one_b = packed || braw.ndim() == 2;  // one B for every row of a
  if (one_b) {
    require(a.ndim() == 3, "a must be 3-D (batch, m, k)");
  } else {
    require(braw.ndim() == a.ndim(), "a and b need the same number of dimensions");
    for (int i = 0; i + 2 < a.ndim(); ++i) require(a.shape(i) == braw.shape(i), "a and b differ in batch shape");
  }
  if (!packed) qdtype_of(braw);  // raises for any other dtype
  const int d = static_cast<int>(a.ndim()), bd = packed ? 2 : static_cast<int>(braw.ndim());
  const size_t k = packed ? b.cast<const PyPackedB&>().b.k : braw.shape(bd - 2);
  const size_t n = packed ? b.cast<const PyPackedB&>().b.n : braw.shape(bd - 1);
  const size_t m = a.shape(d - 2);
  require(static_cast<size_t>(a.shape(d - 1)) == k, "a and b differ in k");
  size_t all_rows = m;  // every row of every batch item
  for (int i = 0; i + 2 < d; ++i) all_rows *= a.shape(i);
  const bool zb_per_column = zb.size() != 1;
  require(!zb_per_column || static_cast<size_t>(zb.size()) == n, "zb needs 1 or n values");
  const OutputParams plain = int32_output(n, nullptr);
  const GemmOutput o = make_output(out, all_rows, n, params ? *params : plain);
  require(!za_rows || static_cast<size_t>(za_rows->size()) == all_rows, "za_rows needs one value per row");
  const int32_t* zbs = zb.data();
  const int32_t* zas = za_rows ? za_rows->data() : nullptr;
  const uint8_t* adata = static_cast<const uint8_t*>(a.data());
  if (one_b) {
    const AOperand A{adata, a_u8, static_cast<size_t>(a.shape(0)), m, k, a.strides(0), a.strides(1), a.strides(2),
                     zas};
    if (packed) {
      const PyPackedB& p = b.cast<const PyPackedB&>();
      py::gil_scoped_release nogil;
      gemm(active_kernels().gemm, A, za, p.b, zbs, zb_per_column, o);
    } else {
      const ByteMatrix B{static_cast<const uint8_t*>(braw.data()), k, n, braw.strides(0), braw.strides(1),
                         qdtype_of(braw) == QDtype::u8};
      py::gil_scoped_release nogil;
      gemm_plain_b(active_kernels().gemm, A, za, B, zbs, zb_per_column, o);
    }
    return;
  }
  const std::vector<ptrdiff_t> a_off = batch_offsets(a), b_off = batch_offsets(braw);
  const MatrixBatch A{adata, a_off.data(), a_off.size(), m, k, a.strides(d - 2), a.strides(d - 1), a_u8};
  const MatrixBatch B{static_cast<const uint8_t*>(braw.data()), b_off.data(), b_off.size(), k, n,
                      braw.strides(d - 2), braw.strides(d - 1), qdtype_of(braw) == QDtype::u8};
  py::gil_scoped_release nogil;
  gemm_batched(active_kernels().gemm, A, za, zas, B, zbs, zb_per_column, o);
}

// acc: (rows, n) int32 with unit column stride.
void py_requantize(py::array acc, py::array out, const OutputParams& params) {
  require(is_dtype(acc, 'i', 4) && acc.ndim() == 2, "acc must be 2-D int32");
  const size_t rows = acc.shape(0), n = acc.shape(1);
  require(acc.strides(1) == 4 && acc.strides(0) >= 0 && acc.strides(0) % 4 == 0, "acc rows must be contiguous");
  const GemmOutput o = make_output(out, rows, n, params);
  const int32_t* data = static_cast<const int32_t*>(acc.data());
  const size_t lda = static_cast<size_t>(acc.strides(0) / 4);
  py::gil_scoped_release nogil;
  requantize(active_kernels().gemm, data, rows, n, lda, o);
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("gemm", &py_gemm, py::arg("a"), py::arg("za"), py::arg("b"), py::arg("zb"), py::arg("out"),
        py::arg("params") = py::none(), py::arg("za_rows") = py::none());
  // The int32 case with a short argument list: small calls are dominated by argument conversion.
  m.def("matmul", [](py::array a, int32_t za, py::object b, I32 zb, py::array out) {
    py_gemm(a, za, std::move(b), std::move(zb), out, nullptr, std::nullopt);
  });
  m.def("requantize", &py_requantize, py::arg("acc"), py::arg("out"), py::arg("params"));
}

}  // namespace qgemm::bindings
