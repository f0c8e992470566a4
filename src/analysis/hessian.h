// Curvature of the training loss: Hessian-vector products by double back-propagation
// (Pearlmutter's trick: H v = d/dtheta (grad L . v)) and the top eigenvalue by power iteration.
// The loss is the mean cross-entropy on a fixed batch with the model in eval mode (no dropout),
// so the Hessian is a fixed matrix.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "model/transformer.h"
#include "tasks/task.h"

namespace pelab {

class LossHessian {
 public:
  // Builds the gradient graph once; every product reuses it.
  LossHessian(Transformer& model, const Dataset& batch);
  ~LossHessian();
  // v: one tensor per parameter (model->parameters() order). Returns H v, same layout.
  std::vector<torch::Tensor> product(const std::vector<torch::Tensor>& v);
  const std::vector<torch::Tensor>& gradient() const { return gradient_; }
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }

 private:
  Transformer& model_;
  bool was_training_;
  std::vector<torch::Tensor> parameters_, gradient_;
};

// The loss's gradient at the current parameters (for the finite-difference test).
std::vector<torch::Tensor> loss_gradient(Transformer& model, const Dataset& batch);

struct HessianEigen {
  double eigenvalue = 0;  // Rayleigh quotient of the last iterate (largest in magnitude)
  int64_t iterations = 0;
  double relative_change = 0;  // |lambda_k - lambda_{k-1}| / |lambda_k| at the end
};
// Power iteration from a random start drawn from its own generator (the global RNG is untouched).
HessianEigen top_hessian_eigenvalue(Transformer& model, const Dataset& batch, int64_t iterations,
                                    uint64_t seed);

}  // namespace pelab
