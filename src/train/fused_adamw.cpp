#include "train/fused_adamw.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdlib>

#include "train/adamw_kernel.h"

namespace pelab {
namespace {

bool fusable(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat &&
         t.is_contiguous() && !t.is_sparse();
}

}  // namespace

torch::Tensor FusedAdamW::step(LossClosure closure) {
  // bench/optimisations.sh times LibTorch's step for comparison.
  static const bool libtorch_step = std::getenv("PELAB_LIBTORCH_ADAMW") != nullptr;
  if (libtorch_step) return torch::optim::AdamW::step(closure);
  for (const auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    bool all_fusable = !options.amsgrad();
    for (const auto& p : group.params())
      if (p.grad().defined() && !(fusable(p) && fusable(p.grad()))) all_fusable = false;
    if (!all_fusable) return torch::optim::AdamW::step(closure);
  }
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable_grad(true);
    loss = closure();
  }
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      // AdamW's state, created as AdamW::step creates it (the same key, the same fields).
      const auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto found = state_.find(key);
      if (found == state_.end()) {
        auto state = std::make_unique<torch::optim::AdamWParamState>();
        state->step(0);
        state->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        state->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        found = state_.emplace(key, std::move(state)).first;
      }
      auto& state = static_cast<torch::optim::AdamWParamState&>(*found->second);
      state.step(state.step() + 1);
      const double bias_correction1 = 1 - std::pow(beta1, double(state.step()));
      const double bias_correction2 = 1 - std::pow(beta2, double(state.step()));
      const AdamWCoefficients c{float(1 - options.lr() * options.weight_decay()),
                                float(beta1),
                                float(beta2),
                                float(1 - beta1),
                                float(1 - beta2),
                                float(std::sqrt(bias_correction2)),
                                float(options.eps()),
                                float(options.lr() / bias_correction1)};
      float* weight = p.data_ptr<float>();
      const float* grad = p.grad().data_ptr<float>();
      float* exp_avg = state.exp_avg().data_ptr<float>();
      float* exp_avg_sq = state.exp_avg_sq().data_ptr<float>();
      at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
        adamw_update(weight + begin, grad + begin, exp_avg + begin, exp_avg_sq + begin, end - begin,
                     c);
      });
    }
  }
  return loss;
}

}  // namespace pelab
