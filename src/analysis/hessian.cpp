#include "analysis/hessian.h"

#include <cmath>

namespace pelab {

namespace {

torch::Tensor batch_loss(Transformer& model, const Dataset& batch) {
  ForwardOptions options;
  options.explicit_attention = true;  // the fused kernel's backward is not differentiable
  return torch::nn::functional::cross_entropy(model->forward(batch.tokens, batch.lengths, options),
                                              batch.labels);
}

std::vector<torch::Tensor> trainable(Transformer& model) {
  std::vector<torch::Tensor> out;
  for (auto& p : model->parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

// Unused parameters come back undefined from autograd; make them zeros.
std::vector<torch::Tensor> defined_or_zero(std::vector<torch::Tensor> grads,
                                           const std::vector<torch::Tensor>& like) {
  for (std::size_t i = 0; i < grads.size(); ++i)
    if (!grads[i].defined()) grads[i] = torch::zeros_like(like[i]);
  return grads;
}

double dot(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += (a[i] * b[i]).sum().item<double>();
  return sum;
}

}  // namespace

LossHessian::LossHessian(Transformer& model, const Dataset& batch)
    : model_(model), was_training_(model->is_training()) {
  model_->eval();
  parameters_ = trainable(model_);
  auto loss = batch_loss(model_, batch);
  gradient_ = defined_or_zero(torch::autograd::grad({loss}, parameters_, {}, /*retain_graph=*/true,
                                                    /*create_graph=*/true, /*allow_unused=*/true),
                              parameters_);
}

LossHessian::~LossHessian() { model_->train(was_training_); }

std::vector<torch::Tensor> LossHessian::product(const std::vector<torch::Tensor>& v) {
  TORCH_CHECK(v.size() == parameters_.size(), "Hessian product: ", v.size(), " vectors for ",
              parameters_.size(), " parameters");
  torch::Tensor inner = torch::zeros({}, parameters_.front().options());
  for (std::size_t i = 0; i < v.size(); ++i)
    if (gradient_[i].requires_grad()) inner = inner + (gradient_[i] * v[i]).sum();
  if (!inner.requires_grad()) {  // a model whose loss is linear in every parameter
    std::vector<torch::Tensor> zeros;
    for (const auto& p : parameters_) zeros.push_back(torch::zeros_like(p));
    return zeros;
  }
  auto hv = torch::autograd::grad({inner}, parameters_, {}, /*retain_graph=*/true,
                                  /*create_graph=*/false, /*allow_unused=*/true);
  for (auto& t : hv)
    if (t.defined()) t = t.detach();
  return defined_or_zero(std::move(hv), parameters_);
}

std::vector<torch::Tensor> loss_gradient(Transformer& model, const Dataset& batch) {
  const bool was_training = model->is_training();
  model->eval();
  auto params = trainable(model);
  auto loss = batch_loss(model, batch);
  auto grads = defined_or_zero(
      torch::autograd::grad({loss}, params, {}, false, false, /*allow_unused=*/true), params);
  model->train(was_training);
  return grads;
}

HessianEigen top_hessian_eigenvalue(Transformer& model, const Dataset& batch, int64_t iterations,
                                    uint64_t seed) {
  LossHessian hessian(model, batch);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<torch::Tensor> v;
  for (const auto& p : hessian.parameters())
    v.push_back(at::normal(0.0, 1.0, p.sizes(), generator, p.options()));
  auto normalise = [](std::vector<torch::Tensor>& x) {
    const double norm = std::sqrt(dot(x, x));
    for (auto& t : x) t = t / std::max(norm, 1e-300);
    return norm;
  };
  normalise(v);
  HessianEigen r;
  double previous = 0;
  for (int64_t k = 0; k < iterations; ++k) {
    auto hv = hessian.product(v);
    const double lambda = dot(v, hv);
    r.eigenvalue = lambda;
    r.iterations = k + 1;
    r.relative_change = std::abs(lambda - previous) / std::max(std::abs(lambda), 1e-300);
    previous = lambda;
    if (normalise(hv) == 0) break;
    v = std::move(hv);
  }
  return r;
}

}  // namespace pelab
