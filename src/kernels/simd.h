// The few vector operations the attention kernels need, for the instruction set this translation
// unit is compiled for: AVX-512 (16 floats), AVX2 + FMA (8 floats) or plain C++ (1 float).
// Each kernel file is compiled once per instruction set (attention_kernel_*.cpp) and everything
// here is static inline inside a namespace named after it, so the variants never meet at link
// time and the right one is picked at run time (fused_attention.cpp).
//
// Deliberately not at::vec::Vectorized: Debian's LibTorch ships no sleef.h, which its AVX2 and
// AVX-512 specialisations need for exp().
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__AVX512F__) || defined(__AVX2__)
// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized on their own _mm512_undefined_* values.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#endif

namespace pelab::kernels::PELAB_KERNEL_ISA {

#if defined(__AVX512F__)

constexpr int kWidth = 16;
using VecF = __m512;
using VecU = __m512i;
using VecMask = __mmask16;

static inline VecF vzero() { return _mm512_setzero_ps(); }
static inline VecF vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, VecF x) { _mm512_storeu_ps(p, x); }
static inline VecF vset1(float x) { return _mm512_set1_ps(x); }
static inline VecF vfmadd(VecF a, VecF b, VecF c) { return _mm512_fmadd_ps(a, b, c); }
static inline VecF vadd(VecF a, VecF b) { return _mm512_add_ps(a, b); }
static inline VecF vsub(VecF a, VecF b) { return _mm512_sub_ps(a, b); }
static inline VecF vmul(VecF a, VecF b) { return _mm512_mul_ps(a, b); }
static inline VecF vmax(VecF a, VecF b) { return _mm512_max_ps(a, b); }
static inline float vsum(VecF x) { return _mm512_reduce_add_ps(x); }
static inline float vmaxall(VecF x) { return _mm512_reduce_max_ps(x); }
static inline VecF vround(VecF x) {
  return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// 2^n for integral n in [-126, 127], built in the exponent field.
static inline VecF vpow2i(VecF n) {
  const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
static inline VecMask vless(VecF a, VecF b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
// x where keep, else 0.
static inline VecF vkeep(VecMask keep, VecF x) { return _mm512_maskz_mov_ps(keep, x); }
static inline VecMask vnot(VecMask m) { return static_cast<VecMask>(~m); }
// Lanes (2t, 2t+1) swapped: RoPE's pair partner.
static inline VecF vswap_pairs(VecF x) { return _mm512_permute_ps(x, 0xB1); }

static inline VecU uset1(uint32_t x) { return _mm512_set1_epi32(static_cast<int>(x)); }
static inline VecU uiota() {
  return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
static inline VecU uadd(VecU a, VecU b) { return _mm512_add_epi32(a, b); }
static inline VecU umul(VecU a, VecU b) { return _mm512_mullo_epi32(a, b); }
static inline VecU uxor_shift(VecU a, int shift) {
  return _mm512_xor_si512(a, _mm512_srli_epi32(a, shift));
}
// a >= b for a, b < 2^31.
static inline VecMask uge(VecU a, VecU b) { return _mm512_cmpge_epi32_mask(a, b); }
static inline VecU ushr(VecU a, int shift) { return _mm512_srli_epi32(a, shift); }

#elif defined(__AVX2__)

constexpr int kWidth = 8;
using VecF = __m256;
using VecU = __m256i;
using VecMask = __m256;  // all-ones lanes are true

static inline VecF vzero() { return _mm256_setzero_ps(); }
static inline VecF vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, VecF x) { _mm256_storeu_ps(p, x); }
static inline VecF vset1(float x) { return _mm256_set1_ps(x); }
static inline VecF vfmadd(VecF a, VecF b, VecF c) { return _mm256_fmadd_ps(a, b, c); }
static inline VecF vadd(VecF a, VecF b) { return _mm256_add_ps(a, b); }
static inline VecF vsub(VecF a, VecF b) { return _mm256_sub_ps(a, b); }
static inline VecF vmul(VecF a, VecF b) { return _mm256_mul_ps(a, b); }
static inline VecF vmax(VecF a, VecF b) { return _mm256_max_ps(a, b); }
static inline float vsum(VecF x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float vmaxall(VecF x) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline VecF vround(VecF x) {
  return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline VecF vpow2i(VecF n) {
  const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
static inline VecMask vless(VecF a, VecF b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline VecF vkeep(VecMask keep, VecF x) { return _mm256_and_ps(keep, x); }
static inline VecMask vnot(VecMask m) {
  return _mm256_xor_ps(m, _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
}
static inline VecF vswap_pairs(VecF x) { return _mm256_permute_ps(x, 0xB1); }

static inline VecU uset1(uint32_t x) { return _mm256_set1_epi32(static_cast<int>(x)); }
static inline VecU uiota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
static inline VecU uadd(VecU a, VecU b) { return _mm256_add_epi32(a, b); }
static inline VecU umul(VecU a, VecU b) { return _mm256_mullo_epi32(a, b); }
static inline VecU uxor_shift(VecU a, int shift) {
  return _mm256_xor_si256(a, _mm256_srli_epi32(a, shift));
}
static inline VecMask uge(VecU a, VecU b) {
  // a >= b  <=>  !(b > a); both below 2^31, so the signed comparison is exact.
  return vnot(_mm256_castsi256_ps(_mm256_cmpgt_epi32(b, a)));
}
static inline VecU ushr(VecU a, int shift) { return _mm256_srli_epi32(a, shift); }

#else  // plain C++: one lane

constexpr int kWidth = 1;
using VecF = float;
using VecU = uint32_t;
using VecMask = bool;

static inline VecF vzero() { return 0.0f; }
static inline VecF vload(const float* p) { return *p; }
static inline void vstore(float* p, VecF x) { *p = x; }
static inline VecF vset1(float x) { return x; }
static inline VecF vfmadd(VecF a, VecF b, VecF c) { return std::fma(a, b, c); }
static inline VecF vadd(VecF a, VecF b) { return a + b; }
static inline VecF vsub(VecF a, VecF b) { return a - b; }
static inline VecF vmul(VecF a, VecF b) { return a * b; }
static inline VecF vmax(VecF a, VecF b) { return a > b ? a : b; }
static inline float vsum(VecF x) { return x; }
static inline float vmaxall(VecF x) { return x; }
static inline VecF vround(VecF x) { return std::nearbyint(x); }
static inline VecF vpow2i(VecF n) {
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}
static inline VecMask vless(VecF a, VecF b) { return a < b; }
static inline VecF vkeep(VecMask keep, VecF x) { return keep ? x : 0.0f; }
static inline VecMask vnot(VecMask m) { return !m; }
// One lane has no pair partner: RoPE's rotation takes its scalar path (kWidth == 1).
static inline VecF vswap_pairs(VecF x) { return x; }

static inline VecU uset1(uint32_t x) { return x; }
static inline VecU uiota() { return 0; }
static inline VecU uadd(VecU a, VecU b) { return a + b; }
static inline VecU umul(VecU a, VecU b) { return a * b; }
static inline VecU uxor_shift(VecU a, int shift) { return a ^ (a >> shift); }
static inline VecMask uge(VecU a, VecU b) { return a >= b; }
static inline VecU ushr(VecU a, int shift) { return a >> shift; }

#endif

// The operands of the kernels' products (attention_kernel_parts.h's gemm): float32, one product
// per step ...
static inline VecF load_operand(const float* p) { return vload(p); }
static inline VecF broadcast_operand(float x) { return vset1(x); }
static inline VecF multiply_accumulate(VecF a, VecF b, VecF acc) { return vfmadd(a, b, acc); }

#if defined(__AVX512F__) && defined(__AVX512BF16__)
// ... or bf16 pairs (train.precision = "bf16"): a Word holds two bf16 values, the first in its low
// half, and one VDPBF16PS step adds both products of 16 lanes' pairs to float32 sums. The
// instruction rounds to nearest even and treats denormal inputs and results as zero, whatever
// MXCSR says. Half: one bf16 value, may_alias because the kernels write bf16 values into float
// scratch (Scratch) and read them back as Words.
using Word = uint32_t;
typedef uint16_t Half __attribute__((may_alias));
static inline __m512bh load_operand(const Word* p) {
  return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
}
static inline __m512bh broadcast_operand(Word x) {
  return reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(x)));
}
static inline VecF multiply_accumulate(__m512bh a, __m512bh b, VecF acc) {
  return _mm512_dpbf16_ps(acc, a, b);
}
// 16 floats rounded to bf16, as VCVTNEPS2BF16 rounds (nearest even, denormals to zero).
static inline __m256i vround_bf16(VecF x) {
  return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x));
}
#endif

// x itself, but a value the compiler must treat as rounded and opaque: a product passed through
// here is never fused with the sum it enters into one FMA. GCC contracts a * b + c on its own
// (-ffp-contract=fast is its default, and the vector kernels are compiled with -mfma); RoPE's
// rotation in the kernels must round as rotary.cpp's, which has no FMA to contract into.
static inline VecF vrounded(VecF x) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+x"(x));
#endif
  return x;
}
static inline float rounded(float x) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+x"(x));
#endif
  return x;
}

// exp(x) for x <= 0 as softmax needs it (Cephes' expf polynomial, about 1 ulp); below -87 it
// returns exactly 0, so masked (-inf) logits give zero weight instead of a denormal.
static inline VecF vexp_nonpositive(VecF x) {
  const VecF lowest = vset1(-87.0f);
  const VecMask underflow = vless(x, lowest);
  x = vmax(x, lowest);
  const VecF n = vround(vmul(x, vset1(1.44269504088896341f)));
  VecF r = vfmadd(n, vset1(-0.693359375f), x);
  r = vfmadd(n, vset1(2.12194440e-4f), r);
  VecF p = vset1(1.9875691500e-4f);
  p = vfmadd(p, r, vset1(1.3981999507e-3f));
  p = vfmadd(p, r, vset1(8.3334519073e-3f));
  p = vfmadd(p, r, vset1(4.1665795894e-2f));
  p = vfmadd(p, r, vset1(1.6666665459e-1f));
  p = vfmadd(p, r, vset1(5.0000001201e-1f));
  p = vfmadd(p, vmul(r, r), vadd(r, vset1(1.0f)));
  return vkeep(vnot(underflow), vmul(p, vpow2i(n)));
}

// A kWidth x kWidth tile transposed: out[d * ld + r] = rows[r][d] for r, d < kWidth. The
// kernels' operand packing turns [L, D] head slices into [D, L] (and the key gradients back);
// element by element that was 16 strided stores per row, a tenth of an attention step.
static inline void vtranspose(const float* const* rows, float* out, int64_t ld) {
#if defined(__AVX512F__)
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(rows[i]);
  // Pairs of rows interleaved, then pairs of pairs: each 128-bit lane of t holds a 4 x 4 block.
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  // Then the 128-bit lanes: rows 4 apart, then 8 apart.
  for (int i = 0; i < 16; i += 8)
    for (int k = 0; k < 4; ++k) {
      t[i + k] = _mm512_shuffle_f32x4(r[i + k], r[i + k + 4], 0x88);
      t[i + k + 4] = _mm512_shuffle_f32x4(r[i + k], r[i + k + 4], 0xDD);
    }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
    r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xDD);
  }
  for (int d = 0; d < 16; ++d) _mm512_storeu_ps(out + d * ld, r[d]);
#else
  for (int r = 0; r < kWidth; ++r)
    for (int d = 0; d < kWidth; ++d) out[d * ld + r] = rows[r][d];
#endif
}

// Dropout's keep decision for kWidth consecutive elements starting at counter `first` of a
// row stream: a counter-based hash (Chris Wellons' lowbias32 of a Weyl sequence), so any
// element's decision can be recomputed in backward without storing a mask.
static inline VecMask dropout_keep(uint32_t row_key, uint32_t first, uint32_t drop_threshold24) {
  VecU x = umul(uadd(uset1(first), uiota()), uset1(0x9E3779B9u));
  x = uadd(x, uset1(row_key));
  x = uxor_shift(x, 16);
  x = umul(x, uset1(0x7feb352dU));
  x = uxor_shift(x, 15);
  x = umul(x, uset1(0x846ca68bU));
  x = uxor_shift(x, 16);
  return uge(ushr(x, 8), uset1(drop_threshold24));
}

// The same decision for one element (scalar heads and tails).
static inline bool dropout_keep_one(uint32_t row_key, uint32_t counter, uint32_t drop_threshold24) {
  uint32_t x = counter * 0x9E3779B9u + row_key;
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return (x >> 8) >= drop_threshold24;
}

}  // namespace pelab::kernels::PELAB_KERNEL_ISA
