// torch::optim::AdamW with its step as one pass over each parameter (src/train/adamw_kernel.h)
// instead of about ten LibTorch ops per parameter tensor. The state (step, exp_avg, exp_avg_sq
// per parameter) and its serialisation are AdamW's own, so checkpoints keep their format and a
// checkpoint written by either loads into the other. Parameters that are not contiguous float32
// CPU tensors, and amsgrad, take AdamW's own step (as does everything when the environment sets
// PELAB_LIBTORCH_ADAMW, for bench/optimisations.sh).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace pelab {

class FusedAdamW : public torch::optim::AdamW {
 public:
  FusedAdamW(std::vector<torch::Tensor> params, torch::optim::AdamWOptions options)
      : torch::optim::AdamW(std::move(params), options) {}
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace pelab
