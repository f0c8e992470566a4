#include "kernels/bf16_convert.h"

#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define PELAB_BF16_CONVERTER 1
#endif

namespace pelab::kernels {

#ifdef PELAB_BF16_CONVERTER

bool bf16_converter_available() {
  static const bool available = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return false;
    return ((eax >> 5) & 1u) != 0;  // CPUID.(EAX=7, ECX=1):EAX[5] = AVX512_BF16
  }();
  return available;
}

// Compiled for AVX-512 with the bf16 extension by this attribute alone, so the rest of the
// program keeps the baseline instruction set; called only where the CPU has both.
__attribute__((target("avx512f,avx512bf16"))) void convert_to_bf16(const float* in, uint16_t* out,
                                                                   int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {  // two vectors in, one out
    const __m512bh both =
        _mm512_cvtne2ps_pbh(_mm512_loadu_ps(in + i + 16), _mm512_loadu_ps(in + i));
    _mm512_storeu_si512(reinterpret_cast<void*>(out + i), reinterpret_cast<__m512i>(both));
  }
  for (; i < n; i += 16) {  // the rest through a padded vector, so it rounds the same way
    const int64_t count = n - i < 16 ? n - i : 16;
    alignas(64) float padded[16] = {};
    alignas(32) uint16_t rounded[16];
    std::memcpy(padded, in + i, count * sizeof(float));
    const __m256bh r = _mm512_cvtneps_pbh(_mm512_load_ps(padded));
    _mm256_store_si256(reinterpret_cast<__m256i*>(rounded), reinterpret_cast<__m256i>(r));
    std::memcpy(out + i, rounded, count * sizeof(uint16_t));
  }
}

#else

bool bf16_converter_available() { return false; }

void convert_to_bf16(const float*, uint16_t*, int64_t) {}

#endif

}  // namespace pelab::kernels
