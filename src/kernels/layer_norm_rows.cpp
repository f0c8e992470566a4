#include "kernels/layer_norm_rows.h"

#include <cmath>

#include "kernels/bf16_convert.h"

// CMakeLists.txt compiles this file alone for AVX-512 with the bf16 extension, so the rest of the
// program keeps the baseline instruction set; layer_norm.cpp calls it only where the CPU has both.
#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>
#define PELAB_LAYER_NORM_ROWS 1
// GCC 12 warns, falsely, that its own AVX-512 intrinsics (_mm512_reduce_add_ps's
// _mm256_undefined_pd) read an uninitialised value (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace pelab::kernels {

#ifdef PELAB_LAYER_NORM_ROWS

namespace {

constexpr int64_t kLanes = 16;

// The lanes of the 16 columns from j that lie in the row.
inline __mmask16 lanes_from(int64_t j, int64_t cols) {
  const int64_t left = cols - j;
  return left >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
}

}  // namespace

bool layer_norm_rows_available() { return bf16_converter_available(); }

void layer_norm_forward_rows(const LayerNormRows& p, int64_t begin, int64_t end, float* y,
                             uint16_t* y_bf16, float* mean, float* rstd) {
  const int64_t n = p.cols;
  for (int64_t i = begin; i < end; ++i) {
    const float* x = p.x + i * n;
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += kLanes)
      sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(lanes_from(j, n), x + j));
    const float row_mean = _mm512_reduce_add_ps(sum) / float(n);
    const __m512 centre = _mm512_set1_ps(row_mean);
    __m512 squares = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += kLanes) {
      const __mmask16 m = lanes_from(j, n);
      const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + j), centre);
      squares = _mm512_fmadd_ps(d, d, squares);
    }
    const float row_rstd = 1.0f / std::sqrt(_mm512_reduce_add_ps(squares) / float(n) + p.eps);
    const __m512 scale = _mm512_set1_ps(row_rstd);
    for (int64_t j = 0; j < n; j += kLanes) {
      const __mmask16 m = lanes_from(j, n);
      const __m512 xhat =
          _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), centre), scale);
      const __m512 out = _mm512_fmadd_ps(xhat, _mm512_maskz_loadu_ps(m, p.gamma + j),
                                         _mm512_maskz_loadu_ps(m, p.beta + j));
      if (y)
        _mm512_mask_storeu_ps(y + i * n + j, m, out);
      else
        _mm256_mask_storeu_epi16(y_bf16 + i * n + j, m,
                                 reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(out)));
    }
    if (mean) mean[i] = row_mean;
    if (rstd) rstd[i] = row_rstd;
  }
}

void layer_norm_backward_rows(const LayerNormRows& p, const float* dy, const float* mean,
                              const float* rstd, int64_t begin, int64_t end, float* dx,
                              float* dgamma, float* dbeta) {
  const int64_t n = p.cols;
  for (int64_t i = begin; i < end; ++i) {
    const float* x = p.x + i * n;
    const float* dy_row = dy + i * n;
    const __m512 centre = _mm512_set1_ps(mean[i]);
    const __m512 scale = _mm512_set1_ps(rstd[i]);
    // First pass: sum(g), sum(g xhat), and the parameters' gradients.
    __m512 g_sum = _mm512_setzero_ps(), g_xhat_sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += kLanes) {
      const __mmask16 m = lanes_from(j, n);
      const __m512 xhat =
          _mm512_maskz_mul_ps(m, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), centre), scale);
      const __m512 d = _mm512_maskz_loadu_ps(m, dy_row + j);
      const __m512 g = _mm512_mul_ps(d, _mm512_maskz_loadu_ps(m, p.gamma + j));
      g_sum = _mm512_add_ps(g_sum, g);
      g_xhat_sum = _mm512_fmadd_ps(g, xhat, g_xhat_sum);
      _mm512_mask_storeu_ps(dgamma + j, m,
                            _mm512_fmadd_ps(d, xhat, _mm512_maskz_loadu_ps(m, dgamma + j)));
      _mm512_mask_storeu_ps(dbeta + j, m, _mm512_add_ps(d, _mm512_maskz_loadu_ps(m, dbeta + j)));
    }
    const __m512 g_mean = _mm512_set1_ps(_mm512_reduce_add_ps(g_sum) / float(n));
    const __m512 g_xhat_mean = _mm512_set1_ps(_mm512_reduce_add_ps(g_xhat_sum) / float(n));
    // Second pass: dx.
    for (int64_t j = 0; j < n; j += kLanes) {
      const __mmask16 m = lanes_from(j, n);
      const __m512 xhat =
          _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), centre), scale);
      const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy_row + j),
                                     _mm512_maskz_loadu_ps(m, p.gamma + j));
      const __m512 out = _mm512_mul_ps(
          scale, _mm512_sub_ps(_mm512_sub_ps(g, g_mean), _mm512_mul_ps(xhat, g_xhat_mean)));
      _mm512_mask_storeu_ps(dx + i * n + j, m, out);
    }
  }
}

#else

bool layer_norm_rows_available() { return false; }
void layer_norm_forward_rows(const LayerNormRows&, int64_t, int64_t, float*, uint16_t*, float*,
                             float*) {}
void layer_norm_backward_rows(const LayerNormRows&, const float*, const float*, const float*,
                              int64_t, int64_t, float*, float*, float*) {}

#endif

}  // namespace pelab::kernels
