#include "qgemm/cpu.h"

#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace qgemm {

// Every ISA, worst to best within each architecture.
constexpr Isa kAllIsas[] = {Isa::scalar,      Isa::avx2, Isa::avx_vnni,
                            Isa::avx512_vnni, Isa::neon, Isa::neon_dotprod};

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx_vnni: return "avx_vnni";
    case Isa::avx512_vnni: return "avx512_vnni";
    case Isa::neon: return "neon";
    case Isa::neon_dotprod: return "neon_dotprod";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : kAllIsas)
    if (name == isa_name(isa)) return isa;
  throw std::invalid_argument(
      "QGEMM_ISA must be one of scalar, avx2, avx_vnni, avx512_vnni, neon, neon_dotprod; got '" +
                              name + "'");
}

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(_M_X64)
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
    bool ymm_enabled = false, zmm_enabled = false;
    if (osxsave) {
      // xgetbv by hand: _xgetbv needs -mxsave, and this file has no ISA flags.
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      ymm_enabled = (lo & 0x6) == 0x6;     // XMM and YMM state saved by the OS
      zmm_enabled = (lo & 0xE6) == 0xE6;  // plus opmask, ZMM0-15 upper halves, ZMM16-31
    }
    if (fma && avx && ymm_enabled && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      f.avx2 = b & (1u << 5);
      const bool f512 = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30),
                 vl = b & (1u << 31), vnni = c & (1u << 11);
      f.avx512_vnni = f.avx2 && zmm_enabled && f512 && dq && bw && vl && vnni;
      unsigned eax1 = 0, ebx1, ecx1, edx1;
      if (a >= 1 && __get_cpuid_count(7, 1, &eax1, &ebx1, &ecx1, &edx1))
        f.avx_vnni = f.avx2 && (eax1 & (1u << 4));  // AVX-VNNI
    }
  }
#endif
#if defined(__aarch64__)
  f.neon = true;  // Advanced SIMD is mandatory on AArch64
#if defined(__linux__)
  f.dotprod = getauxval(AT_HWCAP) & (1ul << 20);  // HWCAP_ASIMDDP
#elif defined(__APPLE__)
  int has = 0;
  size_t size = sizeof(has);
  f.dotprod = sysctlbyname("hw.optional.arm.FEAT_DotProd", &has, &size, nullptr, 0) == 0 && has;
#endif
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool isa_available(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::scalar: return true;
#if defined(QGEMM_HAVE_AVX2)
    case Isa::avx2: return f.avx2;
#if defined(QGEMM_HAVE_AVX_VNNI)
    case Isa::avx_vnni: return f.avx_vnni;
#endif
    case Isa::avx512_vnni: return f.avx512_vnni;
#endif
#if defined(QGEMM_HAVE_NEON)
    case Isa::neon: return f.neon;
    case Isa::neon_dotprod: return f.neon && f.dotprod;
#endif
    default: return false;
  }
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas)
    if (isa_available(isa)) out.push_back(isa);
  return out;
}

Kernels kernels_for(Isa isa) {
  if (!isa_available(isa))
    throw std::runtime_error(std::string("ISA '") + isa_name(isa) + "' is not available here");
  Kernels k = scalar_kernels();
  k.isa = isa_name(isa);
#if defined(QGEMM_HAVE_AVX2)
  // AVX-VNNI CPUs keep the AVX2 quantize loops (memory bound already).
  if (isa == Isa::avx2 || isa == Isa::avx_vnni) k.quant = avx2_quantize_kernels();
  if (isa == Isa::avx512_vnni) k.quant = avx512_vnni_quantize_kernels();
  if (isa == Isa::avx2) k.gemm = avx2_gemm_kernel();
#if defined(QGEMM_HAVE_AVX_VNNI)
  if (isa == Isa::avx_vnni) k.gemm = avx_vnni_gemm_kernel();
#endif
  if (isa == Isa::avx512_vnni) k.gemm = avx512_vnni_gemm_kernel();
#endif
#if defined(QGEMM_HAVE_NEON)
  if (isa == Isa::neon || isa == Isa::neon_dotprod) k.quant = neon_quantize_kernels();
  if (isa == Isa::neon) k.gemm = neon_gemm_kernel();
  if (isa == Isa::neon_dotprod) k.gemm = neon_dotprod_gemm_kernel();
#endif
  return k;
}

namespace {

Isa choose_isa() {
  const std::vector<Isa> avail = available_isas();
  const Isa best = avail.back();
  const char* env = std::getenv("QGEMM_ISA");
  if (!env || !*env) return best;
  const Isa want = parse_isa(env);
  if (!isa_available(want)) {
    std::string have;
    for (Isa i : avail) have += std::string(have.empty() ? "" : ", ") + isa_name(i);
    throw std::runtime_error(std::string("QGEMM_ISA=") + env +
                             " is not supported by this CPU or build (available: " + have + ")");
  }
  return want;
}

}  // namespace

Isa active_isa() {
  static const Isa isa = choose_isa();
  return isa;
}

const Kernels& active_kernels() {
  static const Kernels k = kernels_for(active_isa());
  return k;
}

}  // namespace qgemm
