// pybind11 bindings: converts arrays, releases the GIL, calls the core.
// Argument checking with user-facing messages lives in python/qgemm; the
// checks here only keep a misuse of this private module from crashing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "qgemm/buffer_pool.h"
#include "qgemm/cpu.h"
#include "qgemm/gemm.h"
#include "qgemm/gemm_batched.h"
#include "qgemm/output_stage.h"
#include "qgemm/pack.h"
#include "qgemm/quantize.h"
#include "qgemm/quantize_dynamic.h"
#include "qgemm/thread_pool.h"

namespace py = pybind11;
using namespace qgemm;

namespace {

bool is_dtype(const py::array& a, char kind, size_t itemsize) {
  return a.dtype().kind() == kind && static_cast<size_t>(a.itemsize()) == itemsize;
}

QDtype qdtype_of(const py::array& q) {
  if (is_dtype(q, 'i', 1)) return QDtype::s8;
  if (is_dtype(q, 'u', 1)) return QDtype::u8;
  throw py::type_error("expected an int8 or uint8 array");
}

void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(what);
}

bool c_contiguous(const py::array& a) { return a.flags() & py::array::c_style; }

// Per-channel parameters as float32 / int32 vectors of length `channels`.
struct Params {
  py::array_t<float, py::array::c_style> scale;
  py::array_t<int32_t, py::array::c_style> zp;
};

void check_layout(size_t n, size_t channels, size_t inner, const Params& p) {
  require(channels >= 1 && inner >= 1, "channels and inner must be >= 1");
  require(static_cast<size_t>(p.scale.size()) == channels &&
              static_cast<size_t>(p.zp.size()) == channels,
          "scale and zero_point need one value per channel");
  require(n % (channels * inner) == 0, "size is not a multiple of channels * inner");
}

void py_quantize(py::array x, py::array out, size_t channels, size_t inner, Params p) {
  require(is_dtype(x, 'f', 4) && c_contiguous(x), "x must be C-contiguous float32");
  require(c_contiguous(out) && out.writeable(), "out must be C-contiguous and writeable");
  require(x.size() == out.size(), "x and out differ in size");
  const QDtype dt = qdtype_of(out);
  const size_t n = static_cast<size_t>(x.size());
  check_layout(n, channels, inner, p);
  const float* xs = static_cast<const float*>(x.data());
  void* qs = out.mutable_data();
  py::gil_scoped_release nogil;
  quantize(xs, qs, dt, {n, channels, inner}, p.scale.data(), p.zp.data(), active_kernels().quant);
}

void py_dequantize(py::array q, py::array out, size_t channels, size_t inner, Params p) {
  require(is_dtype(out, 'f', 4) && c_contiguous(out) && out.writeable(),
          "out must be C-contiguous writeable float32");
  require(c_contiguous(q), "q must be C-contiguous");
  require(q.size() == out.size(), "q and out differ in size");
  const QDtype dt = qdtype_of(q);
  const size_t n = static_cast<size_t>(q.size());
  check_layout(n, channels, inner, p);
  const void* qs = q.data();
  float* xs = static_cast<float*>(out.mutable_data());
  py::gil_scoped_release nogil;
  dequantize(qs, dt, xs, {n, channels, inner}, p.scale.data(), p.zp.data(), active_kernels().quant);
}

// B packed for the active GEMM kernel. Immutable once built.
struct PyPackedB {
  PackedB b;
};

PyPackedB py_pack(py::array b, bool single_use) {
  require(b.ndim() == 2, "b must be 2-D");
  const bool u8 = qdtype_of(b) == QDtype::u8;
  ByteMatrix m{static_cast<const uint8_t*>(b.data()), static_cast<size_t>(b.shape(0)),
               static_cast<size_t>(b.shape(1)), b.strides(0), b.strides(1), u8};
  const GemmKernel& k = active_kernels().gemm;
  py::gil_scoped_release nogil;
  return PyPackedB{pack_b(m, k, single_use)};
}

py::array py_unpack(const PyPackedB& p) {
  py::array out(p.b.is_u8 ? py::dtype("uint8") : py::dtype("int8"),
                {static_cast<py::ssize_t>(p.b.k), static_cast<py::ssize_t>(p.b.n)});
  uint8_t* dst = static_cast<uint8_t*>(out.mutable_data());
  py::gil_scoped_release nogil;
  unpack_b(p.b, dst);
  return out;
}

using I32 = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;

// The packed panels as a flat read-only int8 array that views them (no copy)
// and keeps `self` alive: for writing them to a file.
py::array py_panels(py::object self) {
  const PackedB& b = self.cast<const PyPackedB&>().b;
  py::array view(py::dtype("int8"), {static_cast<py::ssize_t>(b.bytes())}, {1}, b.data.get(), self);
  py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return view;
}

// A PackedB over panels held by `panels` (a 1-D int8 array: a memory-mapped
// file or a buffer read from one), which it keeps alive; python/qgemm/_packed_file.py
// has checked the file. The checks here keep a misuse from reading out of bounds.
PyPackedB py_packed_from_panels(py::array panels, size_t k, size_t n, int nr, int kr, bool is_u8,
                                py::array_t<int32_t, py::array::c_style> colsum, int max_abs) {
  require(is_dtype(panels, 'i', 1) && panels.ndim() == 1 && c_contiguous(panels), "panels must be 1-D int8");
  require(nr >= 1 && nr <= 1024 && kr >= 1 && kr <= 64 && max_abs >= 0 && max_abs <= 128,
          "nr, kr or max_abs out of range");
  require(k < (size_t(1) << 40) && n < (size_t(1) << 40), "k or n too large");
  const size_t k_padded = (k + kr - 1) / kr * kr, count = (n + nr - 1) / nr;
  require(k_padded == 0 || count <= SIZE_MAX / nr / k_padded, "panel size overflows");
  require(static_cast<size_t>(panels.size()) == count * k_padded * nr, "panels have the wrong size");
  require(static_cast<size_t>(colsum.size()) == count * nr, "colsum has the wrong size");
  require(reinterpret_cast<uintptr_t>(panels.data()) % 64 == 0, "panels must be 64-byte aligned");
  // The reference to the array is dropped with the GIL held, whichever thread lets go.
  std::shared_ptr<const void> owner(new py::object(panels), [](const void* o) {
    py::gil_scoped_acquire gil;
    delete static_cast<const py::object*>(o);
  });
  std::vector<int32_t> sums(colsum.data(), colsum.data() + colsum.size());
  return PyPackedB{packed_b_from_panels(k, n, nr, kr, is_u8, static_cast<const int8_t*>(panels.data()),
                                        std::move(sums), max_abs, std::move(owner))};
}

// The packed layout of B on this CPU: what a file of packed panels must name
// to be mapped as it is.
py::dict py_packed_layout() {
  const GemmKernel& k = active_kernels().gemm;
  py::dict d;
  d["kernel"] = k.name;
  d["nr"] = k.nr;
  d["kr"] = k.kr;
  d["stored"] = kPackedBStored;
  return d;
}

// A per-column parameter: nullptr for None, else exactly n values.
template <class T>
const T* column_values(const std::optional<py::array_t<T, py::array::c_style | py::array::forcecast>>& v,
                       size_t n, const char* name) {
  if (!v) return nullptr;
  if (static_cast<size_t>(v->size()) != n)
    throw std::invalid_argument(std::string(name) + " needs one value per column");
  return v->data();
}

// Short names for the output kinds this file passes itself.
constexpr OutputKind kOutInt32 = OutputKind::int32;
constexpr OutputKind kOutFloat32 = OutputKind::float32;

// The output stage's arguments, checked, for `rows` x `n` results in `out`
// (int32 / float32 / int8 / uint8 according to `kind`, rows at a fixed stride).
GemmOutput make_output(py::array out, size_t rows, size_t n, OutputKind kind, const std::optional<I32>& bias,
                       const std::optional<F32>& scale, const std::optional<F32>& offset,
                       const std::optional<I32>& mult, const std::optional<I32>& shift,
                       int32_t zero_point, int32_t qmin, int32_t qmax, float fmin, float fmax) {
  GemmOutput o;
  o.kind = kind;
  const bool narrow = output_element_bytes(o.kind) == 1;
  const bool dtype_ok = o.kind == OutputKind::int32     ? is_dtype(out, 'i', 4)
                        : o.kind == OutputKind::float32 ? is_dtype(out, 'f', 4)
                                                        : (is_dtype(out, 'i', 1) || is_dtype(out, 'u', 1));
  require(dtype_ok && out.writeable() && out.ndim() == 2, "out has the wrong dtype or rank");
  require(static_cast<size_t>(out.shape(0)) == rows && static_cast<size_t>(out.shape(1)) == n,
          "out has the wrong shape");
  const py::ssize_t esize = out.itemsize();
  require(out.strides(1) == esize && out.strides(0) >= 0 && out.strides(0) % esize == 0 &&
              (rows <= 1 || static_cast<size_t>(out.strides(0)) >= esize * n),
          "out rows must be contiguous");
  o.data = out.mutable_data();
  o.ldc = out.strides(0) ? static_cast<size_t>(out.strides(0) / esize) : n;
  o.bias = column_values(bias, n, "bias");
  o.scale = column_values(scale, n, "scale");
  o.offset = column_values(offset, n, "offset");
  o.multiplier = column_values(mult, n, "multiplier");
  o.shift = column_values(shift, n, "shift");
  o.zero_point = zero_point;
  o.qmin = qmin;
  o.qmax = qmax;
  o.out_u8 = narrow && is_dtype(out, 'u', 1);
  o.fmin = fmin;
  o.fmax = fmax;
  check_output_stage(o);
  return o;
}

// Per-row a_scale (row_scale, one per output row); only for the float
// output kinds (see output_stage.h).
void set_row_scale(GemmOutput& o, const std::optional<F32>& row_scale, size_t rows, float y_scale) {
  if (!row_scale) return;
  require(static_cast<size_t>(row_scale->size()) == rows, "row_scale needs one value per row");
  o.row_scale = row_scale->data();
  o.y_scale = y_scale;
  check_output_stage(o);
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
// b a PackedB: a is (batch, m, k), any strides, its rows flattened.
// b an int8/uint8 array (..., k, n): a is (..., m, k) with the same leading
// (batch) shape, any strides (zero ones for broadcast items); each item's B
// is packed inside the call (gemm_batched.h).
void py_gemm(py::array a, int32_t za, py::object b, I32 zb, py::array out, OutputKind kind,
             std::optional<I32> bias, std::optional<F32> scale, std::optional<F32> offset,
             std::optional<I32> mult, std::optional<I32> shift, int32_t zero_point, int32_t qmin,
             int32_t qmax, float fmin, float fmax, std::optional<I32> za_rows,
             std::optional<F32> row_scale, float y_scale) {
  const bool a_u8 = qdtype_of(a) == QDtype::u8;
  const bool packed = py::isinstance<PyPackedB>(b);
  py::array braw = packed ? py::array() : py::array(b);
  if (!packed) {
    require(braw.ndim() >= 2 && braw.ndim() == a.ndim(), "a and b need the same number of dimensions");
    for (int i = 0; i + 2 < a.ndim(); ++i) require(a.shape(i) == braw.shape(i), "a and b differ in batch shape");
  } else {
    require(a.ndim() == 3, "a must be 3-D (batch, m, k)");
  }
  const int d = static_cast<int>(a.ndim());
  const size_t k = packed ? b.cast<const PyPackedB&>().b.k : braw.shape(d - 2);
  const size_t n = packed ? b.cast<const PyPackedB&>().b.n : braw.shape(d - 1);
  const size_t m = a.shape(d - 2);
  require(static_cast<size_t>(a.shape(d - 1)) == k, "a and b differ in k");
  size_t all_rows = m;  // every row of every batch item
  for (int i = 0; i + 2 < d; ++i) all_rows *= a.shape(i);
  const bool zb_per_column = zb.size() != 1;
  require(!zb_per_column || static_cast<size_t>(zb.size()) == n, "zb needs 1 or n values");
  GemmOutput o = make_output(out, all_rows, n, kind, bias, scale, offset, mult, shift,
                             zero_point, qmin, qmax, fmin, fmax);
  set_row_scale(o, row_scale, all_rows, y_scale);
  require(!za_rows || static_cast<size_t>(za_rows->size()) == all_rows, "za_rows needs one value per row");
  const int32_t* zbs = zb.data();
  const int32_t* zas = za_rows ? za_rows->data() : nullptr;
  const uint8_t* adata = static_cast<const uint8_t*>(a.data());
  if (packed) {
    const PyPackedB& p = b.cast<const PyPackedB&>();
    AOperand A{adata, a_u8, static_cast<size_t>(a.shape(0)), m, k, a.strides(0), a.strides(1), a.strides(2), zas};
    py::gil_scoped_release nogil;
    gemm(active_kernels().gemm, A, za, p.b, zbs, zb_per_column, o);
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
void py_requantize(py::array acc, py::array out, OutputKind kind, std::optional<I32> bias,
                   std::optional<F32> scale, std::optional<F32> offset, std::optional<I32> mult,
                   std::optional<I32> shift, int32_t zero_point, int32_t qmin, int32_t qmax,
                   float fmin, float fmax, std::optional<F32> row_scale, float y_scale) {
  require(is_dtype(acc, 'i', 4) && acc.ndim() == 2, "acc must be 2-D int32");
  const size_t rows = acc.shape(0), n = acc.shape(1);
  require(acc.strides(1) == 4 && acc.strides(0) >= 0 && acc.strides(0) % 4 == 0,
          "acc rows must be contiguous");
  GemmOutput o = make_output(out, rows, n, kind, bias, scale, offset, mult, shift,
                             zero_point, qmin, qmax, fmin, fmax);
  set_row_scale(o, row_scale, rows, y_scale);
  const int32_t* data = static_cast<const int32_t*>(acc.data());
  const size_t lda = static_cast<size_t>(acc.strides(0) / 4);
  py::gil_scoped_release nogil;
  requantize(active_kernels().gemm, data, rows, n, lda, o);
}

// The int32 case of py_gemm with a short argument list: small calls are
// dominated by argument conversion.
void py_matmul(py::array a, int32_t za, py::object b, I32 zb, py::array out) {
  py_gemm(a, za, std::move(b), zb, out, kOutInt32, std::nullopt, std::nullopt, std::nullopt, std::nullopt,
          std::nullopt, 0, -128, 127, -INFINITY, INFINITY, std::nullopt, std::nullopt, 1.0f);
}

// The rule for the data of dynamic quantization (NaN ignored, infinity and
// all-NaN refused), as ValueErrors.
void require_usable_range(DynamicStatus status) {
  require(status != DynamicStatus::not_finite,
          "x contains infinity, or a range too wide for float32 parameters: no finite scale represents it");
  require(status != DynamicStatus::no_number,
          "x has no finite value (all NaN) in a row or in all: there is no range to choose parameters from");
}

// A dynamically quantized Linear in one call: uint8 affine parameters of
// act_bits bits from each row's range (per_token) or the batch's, NaN ignored,
// exactly as quantize_dynamic chooses them; quantize into a scratch buffer
// (from the bounded buffer pool when large); then the exact GEMM with a dequantizing epilogue
// y = acc * (sx * w_scale[j]) + bias[j], clamped. Codes of at most 7 bits
// prove the range-proven kernel exact without reading them again.
// Python-side, each of these steps costs microseconds.
void py_linear_dynamic(py::array x, const PyPackedB& p, I32 zb, F32 w_scale, std::optional<F32> bias,
                       float fmin, float fmax, py::array y, bool per_token, int act_bits) {
  require(is_dtype(x, 'f', 4) && c_contiguous(x) && x.ndim() == 2, "x must be 2-D C-contiguous float32");
  require(act_bits >= 2 && act_bits <= 8, "act_bits must be in 2..8");
  const size_t rows = x.shape(0), k = x.shape(1), n = p.b.n;
  require(k == p.b.k, "x and the weights differ in k");
  require(static_cast<size_t>(w_scale.size()) == n, "w_scale needs one value per column");
  const float* xs = static_cast<const float*>(x.data());
  const float* ws = w_scale.data();
  const GemmOutput proto = make_output(y, rows, n, kOutFloat32, std::nullopt, w_scale, bias, std::nullopt,
                                       std::nullopt, 0, 0, 0, fmin, fmax);
  const bool zb_per_column = zb.size() != 1;
  require(!zb_per_column || static_cast<size_t>(zb.size()) == n, "zb needs 1 or n values");
  const int32_t* zbs = zb.data();
  DynamicStatus status = DynamicStatus::ok;
  {
    py::gil_scoped_release nogil;
    const Kernels& kern = active_kernels();
    DynamicScheme scheme;
    scheme.bits = act_bits;
    scheme.per_row = per_token;
    const ScratchBuffer xq(rows * k);
    std::vector<float> sx(per_token ? rows : 1);
    std::vector<int32_t> zx(per_token ? rows : 1);
    status = quantize_dynamic(xs, rows, k, scheme, xq.data(), sx.data(), zx.data(), kern.quant);
    if (status == DynamicStatus::ok) {
      GemmOutput o = proto;
      AOperand A{xq.as<uint8_t>(), true, 1, rows, k, 0, static_cast<ptrdiff_t>(k), 1};
      A.max_stored = (1 << act_bits) - 1;
      std::vector<float> col_scale;
      if (per_token) {  // scale sx[i] * w_scale[j] formed in the epilogue
        A.row_zero_point = zx.data();
        o.row_scale = sx.data();
      } else {
        col_scale.resize(n);
        for (size_t j = 0; j < n; ++j) col_scale[j] = sx[0] * ws[j];
        o.scale = col_scale.data();
      }
      gemm(kern.gemm, A, per_token ? 0 : zx[0], p.b, zbs, zb_per_column, o);
    }
  }
  require_usable_range(status);
}

// Dynamic quantization of x (rows, k) into q (rows, k): scale and zero_point
// receive one value per row (per_row) or one.
void py_quantize_dynamic(py::array x, py::array q, py::array_t<float> scale, py::array_t<int32_t> zero_point,
                         int bits, bool symmetric, bool per_row) {
  require(is_dtype(x, 'f', 4) && c_contiguous(x) && x.ndim() == 2, "x must be 2-D C-contiguous float32");
  require(c_contiguous(q) && q.writeable() && q.ndim() == 2 && q.shape(0) == x.shape(0) &&
              q.shape(1) == x.shape(1), "q must be a writeable C-contiguous array shaped like x");
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

// An uninitialized C-ordered array whose memory comes from the buffer pool
// and goes back to it when the array is freed.
py::array py_empty(const std::vector<py::ssize_t>& shape, py::dtype dtype) {
  size_t bytes = static_cast<size_t>(dtype.itemsize());
  for (py::ssize_t d : shape) {
    if (d < 0) throw std::invalid_argument("negative dimension");
    bytes *= static_cast<size_t>(d);
  }
  struct Owned {
    void* p;
    size_t capacity;
  };
  size_t capacity = 0;
  void* p = pool_acquire(bytes, &capacity);
  auto* owned = new Owned{p, capacity};
  py::capsule base(owned, [](void* o) {
    auto* b = static_cast<Owned*>(o);
    pool_release(b->p, b->capacity);
    delete b;
  });
  return py::array(dtype, shape, {}, p, base);
}

py::dict py_cpu_info() {
  py::dict d;
  const CpuFeatures& f = cpu_features();
  py::dict feats;
  feats["avx2"] = f.avx2;
  feats["avx_vnni"] = f.avx_vnni;
  feats["avx512_vnni"] = f.avx512_vnni;
  feats["neon"] = f.neon;
  feats["dotprod"] = f.dotprod;
  d["features"] = feats;
  py::list avail;
  for (Isa i : available_isas()) avail.append(isa_name(i));
  d["available"] = avail;
  d["isa"] = isa_name(active_isa());
  d["gemm_kernel"] = active_kernels().gemm.name;
  return d;
}

}  // namespace

PYBIND11_MODULE(_qgemm, m) {
  m.doc() = "qgemm native core";
  // Choose kernels now: a bad QGEMM_ISA fails the import with its message.
  // So does a bad QGEMM_NUM_THREADS.
  try {
    active_kernels();
    get_num_threads();
  } catch (const std::exception& e) {
    throw py::import_error(e.what());
  }
  // std::bad_alloc (a buffer of a call, in the caller or carried back from a
  // task) is a MemoryError that says what failed.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "qgemm: not enough memory for the buffers of this call");
    }
  });
  m.def("cpu_info", &py_cpu_info);
  m.def("empty", &py_empty);
  m.attr("MAX_THREADS") = kMaxThreads;
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads);
  m.def("quantize", [](py::array x, py::array out, size_t channels, size_t inner,
                       py::array_t<float, py::array::c_style | py::array::forcecast> scale,
                       py::array_t<int32_t, py::array::c_style | py::array::forcecast> zp) {
    py_quantize(x, out, channels, inner, {scale, zp});
  });
  m.def("dequantize", [](py::array q, py::array out, size_t channels, size_t inner,
                         py::array_t<float, py::array::c_style | py::array::forcecast> scale,
                         py::array_t<int32_t, py::array::c_style | py::array::forcecast> zp) {
    py_dequantize(q, out, channels, inner, {scale, zp});
  });
  py::enum_<OutputKind>(m, "OutputKind")
      .value("int32", OutputKind::int32)
      .value("float32", OutputKind::float32)
      .value("requantize_float", OutputKind::requantize_float)
      .value("requantize_fixed_point", OutputKind::requantize_fixed_point);
  py::class_<PyPackedB>(m, "PackedB")
      .def_property_readonly("k", [](const PyPackedB& p) { return p.b.k; })
      .def_property_readonly("n", [](const PyPackedB& p) { return p.b.n; })
      .def_property_readonly("is_uint8", [](const PyPackedB& p) { return p.b.is_u8; })
      .def_property_readonly("nbytes", [](const PyPackedB& p) {
        return packed_bytes(p.b);
      })
      .def_property_readonly("nr", [](const PyPackedB& p) { return p.b.nr; })
      .def_property_readonly("kr", [](const PyPackedB& p) { return p.b.kr; })
      .def_property_readonly("max_abs", [](const PyPackedB& p) { return p.b.max_abs; })
      .def_property_readonly("borrowed", [](const PyPackedB& p) { return bool(p.b.data.get_deleter().owner); })
      .def_property_readonly("colsum", [](const PyPackedB& p) {
        return py::array_t<int32_t>(static_cast<py::ssize_t>(p.b.colsum.size()), p.b.colsum.data());
      })
      .def("panels", &py_panels)
      .def("unpack", &py_unpack);
  m.def("pack", &py_pack, py::arg("b"), py::arg("single_use") = false);
  m.def("packed_from_panels", &py_packed_from_panels);
  m.def("packed_layout", &py_packed_layout);
  m.def("matmul", &py_matmul);
  m.def("quantize_multiplier", [](double real) {
    const QuantizedMultiplier q = quantize_multiplier(real);
    return py::make_tuple(q.multiplier, q.shift);
  });
  m.def("quantize_multipliers", [](py::array_t<double, py::array::c_style | py::array::forcecast> real) {
    const size_t n = static_cast<size_t>(real.size());
    I32 mult(static_cast<py::ssize_t>(n)), shift(static_cast<py::ssize_t>(n));
    quantize_multipliers(real.data(), n, mult.mutable_data(), shift.mutable_data());
    return py::make_tuple(mult, shift);
  });
  m.def("linear_dynamic", &py_linear_dynamic);
  m.def("quantize_dynamic", &py_quantize_dynamic);
  m.def("requantize", &py_requantize, py::arg("acc"), py::arg("out"), py::arg("kind"),
        py::arg("bias") = py::none(), py::arg("scale") = py::none(), py::arg("offset") = py::none(),
        py::arg("mult") = py::none(), py::arg("shift") = py::none(), py::arg("zero_point") = 0,
        py::arg("qmin") = -128, py::arg("qmax") = 127, py::arg("fmin") = -INFINITY,
        py::arg("fmax") = INFINITY, py::arg("row_scale") = py::none(), py::arg("y_scale") = 1.0f);
  m.def("gemm", &py_gemm, py::arg("a"), py::arg("za"), py::arg("b"), py::arg("zb"), py::arg("out"),
        py::arg("kind") = OutputKind::int32, py::arg("bias") = py::none(), py::arg("scale") = py::none(),
        py::arg("offset") = py::none(), py::arg("mult") = py::none(), py::arg("shift") = py::none(),
        py::arg("zero_point") = 0, py::arg("qmin") = -128, py::arg("qmax") = 127,
        py::arg("fmin") = -INFINITY, py::arg("fmax") = INFINITY, py::arg("za_rows") = py::none(),
        py::arg("row_scale") = py::none(), py::arg("y_scale") = 1.0f);
}
