// The native module _qgemm: converts arrays, releases the GIL, calls the
// core. Each binding file adds one part (convert.h lists them); this one
// holds the module itself, the CPU and thread settings and pooled arrays.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <exception>
#include <new>
#include <vector>

#include "convert.h"
#include "qgemm/buffer_pool.h"
#include "qgemm/cpu.h"
#include "qgemm/thread_pool.h"

namespace qgemm::bindings {

namespace {

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

}  // namespace qgemm::bindings

PYBIND11_MODULE(_qgemm, m) {
  using namespace qgemm;
  using namespace qgemm::bindings;
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
  bind_quantize(m);
  bind_packed(m);
  bind_output_params(m);
  bind_gemm(m);
  bind_linear(m);
}
