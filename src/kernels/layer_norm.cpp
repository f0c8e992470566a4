#include "kernels/layer_norm.h"

#include <algorithm>
#include <vector>

#include "kernels/chunked_column_sums.h"
#include "kernels/layer_norm_rows.h"
#include "kernels/onednn_linear.h"
#include "kernels/onednn_linear_parts.h"

namespace pelab {
namespace {

// Rows per task, and per partial sum of the parameters' gradients: fixed, so the numbers do not
// depend on the thread count.
constexpr int64_t kLayerNormRowsPerChunk = 128;

int64_t chunks_of(int64_t rows) {
  return (rows + kLayerNormRowsPerChunk - 1) / kLayerNormRowsPerChunk;
}

kernels::LayerNormRows rows_of(const torch::Tensor& x, const torch::Tensor& gamma,
                               const torch::Tensor& beta, double eps) {
  return {x.data_ptr<float>(), x.size(-1), gamma.data_ptr<float>(), beta.data_ptr<float>(),
          static_cast<float>(eps)};
}

// y = LayerNorm(x) as `dtype` (float32 or bf16), and the rows' mean and rstd when asked for.
torch::Tensor forward_rows(const torch::Tensor& x, const torch::Tensor& gamma,
                           const torch::Tensor& beta, double eps, torch::ScalarType dtype,
                           torch::Tensor* mean, torch::Tensor* rstd) {
  const auto p = rows_of(x, gamma, beta, eps);
  const int64_t rows = x.numel() / p.cols;
  auto y = torch::empty(x.sizes(), x.options().dtype(dtype));
  float* y_float = dtype == torch::kFloat ? y.data_ptr<float>() : nullptr;
  auto* y_bf16 =
      dtype == torch::kFloat ? nullptr : reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>());
  float *mean_of = nullptr, *rstd_of = nullptr;
  if (mean) {
    *mean = torch::empty({rows}, x.options());
    *rstd = torch::empty({rows}, x.options());
    mean_of = mean->data_ptr<float>();
    rstd_of = rstd->data_ptr<float>();
  }
  at::parallel_for(0, chunks_of(rows), 1, [&](int64_t begin, int64_t end) {
    kernels::layer_norm_forward_rows(p, begin * kLayerNormRowsPerChunk,
                                     std::min(rows, end * kLayerNormRowsPerChunk), y_float, y_bf16,
                                     mean_of, rstd_of);
  });
  return y;
}

class LayerNormFunction : public torch::autograd::Function<LayerNormFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& gamma, const torch::Tensor& beta, double eps) {
    torch::Tensor mean, rstd;
    auto y = forward_rows(x, gamma, beta, eps, torch::kFloat, &mean, &rstd);
    ctx->save_for_backward({x, gamma, beta, mean, rstd});
    ctx->saved_data["eps"] = eps;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &gamma = saved[1], &beta = saved[2], &mean = saved[3],
               &rstd = saved[4];
    const auto p = rows_of(x, gamma, beta, ctx->saved_data["eps"].toDouble());
    const auto dy = grads[0].to(torch::kFloat).contiguous();
    const int64_t rows = x.numel() / p.cols;
    auto dx = torch::empty(x.sizes(), x.options());
    auto dgamma = torch::empty({p.cols}, x.options()), dbeta = torch::empty({p.cols}, x.options());
    sum_columns_in_chunks(
        rows, p.cols, kLayerNormRowsPerChunk, {dgamma.data_ptr<float>(), dbeta.data_ptr<float>()},
        [&](int64_t first, int64_t last, float* partials) {
          kernels::layer_norm_backward_rows(p, dy.data_ptr<float>(), mean.data_ptr<float>(),
                                            rstd.data_ptr<float>(), first, last,
                                            dx.data_ptr<float>(), partials, partials + p.cols);
        });
    return {dx, dgamma, dbeta, torch::Tensor()};
  }
};

bool takes_row_kernels(const torch::nn::LayerNorm& norm, const torch::Tensor& x) {
  const auto& options = norm->options;
  const auto is_cpu_float = [](const torch::Tensor& t) {
    return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat;
  };
  return bf16_products_enabled() && kernels::layer_norm_rows_available() &&
         options.elementwise_affine() && options.normalized_shape().size() == 1 && x.dim() >= 1 &&
         x.size(-1) == options.normalized_shape()[0] && x.size(-1) > 0 && is_cpu_float(x) &&
         is_cpu_float(norm->weight) && is_cpu_float(norm->bias);
}

}  // namespace

torch::Tensor layer_norm(const torch::nn::LayerNorm& norm, const torch::Tensor& x,
                         bool explicit_path, bool feeds_products) {
  if (explicit_path || !takes_row_kernels(norm, x)) return norm.ptr()->forward(x);
  const double eps = norm->options.eps();
  const auto gamma = norm->weight.contiguous(), beta = norm->bias.contiguous();
  if (linear_parts::gradient_wanted({x, norm->weight, norm->bias}))
    return LayerNormFunction::apply(x.contiguous(), gamma, beta, eps);
  torch::NoGradGuard no_grad;
  return forward_rows(x.contiguous(), gamma, beta, eps,
                      feeds_products ? torch::kBFloat16 : torch::kFloat, nullptr, nullptr);
}

}  // namespace pelab
