// The pieces the oneDNN linear layers (onednn_linear.cpp) share with the fused FFN
// (onednn_feed_forward.cpp): onednn_linear_parts.h says what each does.
#include "kernels/onednn_linear_parts.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/bf16_convert.h"
#include "kernels/chunked_column_sums.h"
#include "kernels/onednn_linear.h"

namespace pelab {
namespace {

// A bf16 tensor's storage as the raw 16-bit patterns the converter writes.
uint16_t* bf16_bits(const torch::Tensor& t) {
  return reinterpret_cast<uint16_t*>(const_cast<void*>(t.data_ptr()));
}

// Whether y is positive: float32, or bf16 (its bits are a float32's upper half).
inline bool positive(float y) { return y > 0.0f; }
inline bool positive(uint16_t y_bits) {
  float y;
  const uint32_t bits = uint32_t(y_bits) << 16;
  std::memcpy(&y, &bits, sizeof y);
  return y > 0.0f;
}

// Rows per chunk of the bias gradients' column sums (chunked_column_sums.h).
constexpr int64_t kBiasRowsPerChunk = 256;

// db's storage as sum_columns_in_chunks' totals: none where no bias gradient is wanted.
std::vector<float*> totals_of(torch::Tensor& db) {
  return db.defined() ? std::vector<float*>{db.data_ptr<float>()} : std::vector<float*>{};
}

void add_row(const float* __restrict row, int64_t cols, float* __restrict sums) {
  for (int64_t j = 0; j < cols; ++j) sums[j] += row[j];
}

// ReLU's backward and the bias gradient in one pass: dz = dy where y > 0 (y = relu(z) is
// positive exactly where z is; y float32 or bf16), db = the column sums of dz, and, when
// dz_bf16 is defined, dz rounded to bf16 for the products (each row while it is in cache).
template <typename Y>
void relu_backward_rows(const torch::Tensor& dy, const Y* __restrict out, int64_t rows,
                        int64_t cols, torch::Tensor& dz, torch::Tensor& db,
                        const torch::Tensor& dz_bf16) {
  const float* __restrict g = dy.data_ptr<float>();
  float* __restrict d = dz.data_ptr<float>();
  auto* rounded = dz_bf16.defined() ? bf16_bits(dz_bf16) : nullptr;
  const bool bias_grad = db.defined();
  sum_columns_in_chunks(
      rows, cols, kBiasRowsPerChunk, totals_of(db), [&](int64_t first, int64_t last, float* sums) {
        for (int64_t i = first; i < last; ++i) {
          const float* __restrict g_row = g + i * cols;
          const Y* __restrict y_row = out + i * cols;
          float* __restrict d_row = d + i * cols;
          for (int64_t j = 0; j < cols; ++j) {
            const float gradient = g_row[j];  // loaded unconditionally, so the loop vectorises
            d_row[j] = positive(y_row[j]) ? gradient : 0.0f;
          }
          if (rounded) kernels::convert_to_bf16(d_row, rounded + i * cols, cols);
          if (bias_grad) add_row(d_row, cols, sums);
        }
      });
}

}  // namespace

namespace linear_parts {

torch::Tensor relu_backward_with_bias_grad(const torch::Tensor& dy, const torch::Tensor& y,
                                           torch::Tensor& dz, torch::Tensor& db, bool round) {
  // Rounded in the same pass where the CPU has the converter; otherwise after it.
  const bool round_in_pass = round && kernels::bf16_converter_available();
  torch::Tensor dz_bf16;
  if (round_in_pass) dz_bf16 = torch::empty(dz.sizes(), dz.options().dtype(torch::kBFloat16));
  if (y.scalar_type() == torch::kBFloat16)
    relu_backward_rows(dy, bf16_bits(y), y.size(0), y.size(1), dz, db, dz_bf16);
  else
    relu_backward_rows(dy, y.data_ptr<float>(), y.size(0), y.size(1), dz, db, dz_bf16);
  if (round && !round_in_pass) dz_bf16 = bf16_copy(dz);
  return dz_bf16;
}

torch::Tensor bias_grad_and_bf16(const torch::Tensor& dy, torch::Tensor& db) {
  if (!kernels::bf16_converter_available()) {
    if (db.defined()) db = dy.sum(0);
    return bf16_copy(dy);
  }
  const auto rows = dy.contiguous();
  const int64_t cols = rows.size(1);
  auto rounded = torch::empty(rows.sizes(), rows.options().dtype(torch::kBFloat16));
  const float* g = rows.data_ptr<float>();
  uint16_t* r = bf16_bits(rounded);
  const bool bias_grad = db.defined();
  sum_columns_in_chunks(rows.size(0), cols, kBiasRowsPerChunk, totals_of(db),
                        [&](int64_t first, int64_t last, float* sums) {
                          for (int64_t i = first; i < last; ++i) {
                            kernels::convert_to_bf16(g + i * cols, r + i * cols, cols);
                            if (bias_grad) add_row(g + i * cols, cols, sums);
                          }
                        });
  return rounded;
}

std::vector<int64_t> with_last(const torch::Tensor& x, int64_t last) {
  auto shape = x.sizes().vec();
  shape.back() = last;
  return shape;
}

std::pair<torch::Tensor, torch::Tensor> product_operands(const torch::Tensor& x,
                                                         const torch::Tensor& weight, bool bf16,
                                                         bool inference) {
  const auto rows = x.reshape({-1, weight.size(1)});
  return {bf16 ? bf16_copy(rows) : rows, product_weight(weight, bf16, inference)};
}

Bf16HiddenLayer bf16_hidden_layer(const torch::Tensor& x, const torch::Tensor& weight,
                                  const torch::Tensor& bias, bool inference) {
  auto [x2, w] = product_operands(x, weight, true, inference);
  auto hidden = torch::empty({x2.size(0), w.size(0)}, x.options().dtype(torch::kBFloat16));
  onednn_matmul(x2, w.t(), bias, hidden, true);
  return {x2, w, hidden};
}

bool takes_onednn(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                  bool use_onednn) {
  // A bf16 x is a bf16 LayerNorm's output (layer_norm.h), already the products' operand.
  const bool x_type =
      x.scalar_type() == torch::kFloat ||
      (x.scalar_type() == torch::kBFloat16 && bf16_products_enabled() && !gradient_wanted({x}));
  return use_onednn && onednn_available() && x.device().is_cpu() && weight.device().is_cpu() &&
         x_type && weight.scalar_type() == torch::kFloat &&
         (!bias.defined() || bias.scalar_type() == torch::kFloat);
}

torch::Tensor bias_or_empty(const torch::Tensor& bias) {
  return bias.defined() ? bias : torch::empty({0});
}

bool gradient_wanted(std::initializer_list<torch::Tensor> inputs) {
  if (!torch::GradMode::is_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

torch::Tensor product_add(const torch::Tensor& x2, const torch::Tensor& w,
                          const torch::Tensor& bias, const torch::Tensor& residual,
                          const std::vector<int64_t>& shape) {
  auto y = torch::empty({x2.size(0), w.size(0)}, residual.options());
  onednn_matmul(x2, w.t(), bias, y, false, residual.reshape({-1, w.size(0)}).contiguous());
  return y.view(shape);
}

bool residual_fits(const torch::Tensor& residual, const std::vector<int64_t>& shape) {
  return residual.scalar_type() == torch::kFloat && residual.device().is_cpu() &&
         residual.sizes() == torch::IntArrayRef(shape);
}

}  // namespace linear_parts

}  // namespace pelab
