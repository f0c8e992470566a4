#include "kernels/fused_dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <mutex>

#include "kernels/attention_kernel.h"

namespace pelab {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

constexpr int64_t kGrain = 1 << 15;

uint64_t draw_seed() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

// out = residual + x * keep / (1 - p) over contiguous float arrays.
void run_dropout(const Tensor& x, const Tensor& residual, const Tensor& out, double p,
                 uint64_t seed) {
  const float* x_data = x.data_ptr<float>();
  const float* residual_data = residual.defined() ? residual.data_ptr<float>() : nullptr;
  float* out_data = out.data_ptr<float>();
  const auto dropout = kernels::active_kernels().dropout;
  at::parallel_for(0, x.numel(), kGrain, [&](int64_t first, int64_t last) {
    dropout(x_data, residual_data, out_data, first, last, static_cast<float>(p), seed);
  });
}

class DropoutAddFunction : public torch::autograd::Function<DropoutAddFunction> {
 public:
  // residual_or_empty: LibTorch 1.13's custom Functions refuse undefined tensor arguments.
  static Tensor forward(AutogradContext* ctx, const Tensor& residual_or_empty, const Tensor& x,
                        double p) {
    const uint64_t seed = draw_seed();
    const Tensor residual = residual_or_empty.numel() > 0 ? residual_or_empty : Tensor();
    Tensor out = torch::empty_like(x);
    run_dropout(x, residual, out, p, seed);
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = static_cast<int64_t>(seed);
    ctx->saved_data["has_residual"] = residual.defined();
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const Tensor grad = grads[0].contiguous();
    Tensor grad_x = torch::empty_like(grad);
    run_dropout(grad, Tensor(), grad_x, ctx->saved_data["p"].toDouble(),
                static_cast<uint64_t>(ctx->saved_data["seed"].toInt()));
    const bool has_residual = ctx->saved_data["has_residual"].toBool();
    return {has_residual ? grad : Tensor(), grad_x, Tensor()};
  }
};

bool fusable(const Tensor& residual, const Tensor& x) {
  auto ok = [&](const Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
  };
  return ok(x) && (!residual.defined() || (ok(residual) && residual.sizes() == x.sizes())) &&
         kernels::active_kernels().dropout != nullptr;
}

}  // namespace

Tensor dropout_add(const Tensor& residual, const Tensor& x, double p, bool training) {
  if (!training || p <= 0) return residual.defined() ? residual + x : x;
  if (!fusable(residual, x)) {
    auto dropped = torch::dropout(x, p, true);
    return residual.defined() ? residual + dropped : dropped;
  }
  const bool needs_grad = torch::GradMode::is_enabled() &&
                          (x.requires_grad() || (residual.defined() && residual.requires_grad()));
  if (needs_grad)
    return DropoutAddFunction::apply(residual.defined() ? residual : torch::empty({0}), x, p);
  Tensor out = torch::empty_like(x);
  run_dropout(x, residual, out, p, draw_seed());
  return out;
}

}  // namespace pelab
