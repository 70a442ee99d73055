// _qgemm.PackedB: B packed for the active kernel, unpacked, viewed as raw
// panels for a file, and rebuilt over panels read or mapped from one.
#include "packed.h"

#include <memory>
#include <vector>

#include "convert.h"
#include "qgemm/cpu.h"
#include "qgemm/pack.h"

namespace qgemm::bindings {

namespace {

PyPackedB py_pack(py::array b) {
  require(b.ndim() == 2, "b must be 2-D");
  const bool u8 = qdtype_of(b) == QDtype::u8;
  ByteMatrix m{static_cast<const uint8_t*>(b.data()), static_cast<size_t>(b.shape(0)),
               static_cast<size_t>(b.shape(1)), b.strides(0), b.strides(1), u8};
  const GemmKernel& k = active_kernels().gemm;
  py::gil_scoped_release nogil;
  return PyPackedB{pack_b(m, k)};
}

py::array py_unpack(const PyPackedB& p) {
  py::array out(p.b.is_u8 ? py::dtype("uint8") : py::dtype("int8"),
                {static_cast<py::ssize_t>(p.b.k), static_cast<py::ssize_t>(p.b.n)});
  uint8_t* dst = static_cast<uint8_t*>(out.mutable_data());
  py::gil_scoped_release nogil;
  unpack_b(p.b, dst);
  return out;
}

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

}  // namespace

void bind_packed(py::module_& m) {
  py::class_<PyPackedB>(m, "PackedB")
      .def_property_readonly("k", [](const PyPackedB& p) { return p.b.k; })
      .def_property_readonly("n", [](const PyPackedB& p) { return p.b.n; })
      .def_property_readonly("is_uint8", [](const PyPackedB& p) { return p.b.is_u8; })
      .def_property_readonly("nbytes", [](const PyPackedB& p) { return packed_bytes(p.b); })
      .def_property_readonly("nr", [](const PyPackedB& p) { return p.b.nr; })
      .def_property_readonly("kr", [](const PyPackedB& p) { return p.b.kr; })
      .def_property_readonly("max_abs", [](const PyPackedB& p) { return p.b.max_abs; })
      .def_property_readonly("borrowed", [](const PyPackedB& p) { return bool(p.b.data.get_deleter().owner); })
      .def_property_readonly("colsum",
                             [](const PyPackedB& p) {
                               return py::array_t<int32_t>(static_cast<py::ssize_t>(p.b.colsum.size()),
                                                           p.b.colsum.data());
                             })
      .def("panels", &py_panels)
      .def("unpack", &py_unpack);
  m.def("pack", &py_pack, py::arg("b"));
  m.def("packed_from_panels", &py_packed_from_panels);
  m.def("packed_layout", &py_packed_layout);
}

}  // namespace qgemm::bindings
