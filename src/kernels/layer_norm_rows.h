// LayerNorm's row loops for the bf16 products' models (layer_norm.h): forward writing float32 or
// bf16, backward with the parameters' gradients summed per chunk of rows. Float32 throughout;
// AVX-512 with AVX512_BF16, so only where the CPU has the bf16 converter (bf16_convert.h), which
// bf16 products need anyway. Torch-free, like the other kernels.
#pragma once

#include <cstdint>

namespace pelab::kernels {

// Whether this build and CPU run the row loops.
bool layer_norm_rows_available();

// rows x cols float32 values, normalised over each row, then scaled by gamma and shifted by beta
// (both [cols]).
struct LayerNormRows {
  const float* x;
  int64_t cols;
  const float* gamma;
  const float* beta;
  float eps;
};

// Rows [begin, end): y = (x - mean) rstd gamma + beta with mean and the biased variance of the row
// (two passes: the sum, then the squares about the mean) and rstd = 1 / sqrt(var + eps). Writes y
// as float32 to `y` or, rounded to nearest even, as bf16 to `y_bf16` (one of them non-null), and
// each row's mean and rstd where those are non-null.
void layer_norm_forward_rows(const LayerNormRows& p, int64_t begin, int64_t end, float* y,
                             uint16_t* y_bf16, float* mean, float* rstd);

// Rows [begin, end) of the backward, given dy and the forward's mean and rstd: with
// xhat = (x - mean) rstd and g = dy gamma,
//   dx = rstd (g - mean(g) - xhat mean(g xhat)),
// and gamma's and beta's gradients, sum(dy xhat) and sum(dy) over these rows, added to
// dgamma[cols] and dbeta[cols].
void layer_norm_backward_rows(const LayerNormRows& p, const float* dy, const float* mean,
                              const float* rstd, int64_t begin, int64_t end, float* dx,
                              float* dgamma, float* dbeta);

}  // namespace pelab::kernels
