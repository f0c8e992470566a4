// FusedAdamW against LibTorch's torch::optim::AdamW: the same parameters after several steps,
// and state that either one saves loads into the other (checkpoints keep their format).
#include <gtest/gtest.h>

#include <sstream>

#include "train/fused_adamw.h"

using namespace pelab;

namespace {

torch::optim::AdamWOptions options() {
  return torch::optim::AdamWOptions(3e-3).betas({0.98, 0.9}).weight_decay(1e-2);
}

// Shapes like a model's: a matrix, a vector, a tensor big enough to be split between threads.
std::vector<torch::Tensor> make_params() {
  torch::manual_seed(5);
  return {torch::randn({33, 17}), torch::randn({40}), torch::randn({300, 257})};
}

void fake_gradients(std::vector<torch::Tensor>& params, int64_t step) {
  torch::manual_seed(100 + step);
  for (auto& p : params) p.mutable_grad() = torch::randn_like(p);
}

double max_relative_difference(const std::vector<torch::Tensor>& a,
                               const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, ((a[i] - b[i]).norm() / b[i].norm()).item<double>());
  return worst;
}

}  // namespace

TEST(FusedAdamW, MatchesLibTorchAdamWOverSteps) {
  auto fused_params = make_params(), reference_params = make_params();
  FusedAdamW fused(fused_params, options());
  torch::optim::AdamW reference(reference_params, options());
  for (int64_t step = 0; step < 7; ++step) {
    fake_gradients(fused_params, step);
    fake_gradients(reference_params, step);
    fused.step();
    reference.step();
  }
  // float32 roundings may differ by one ulp per operation (LibTorch fuses some multiply-adds).
  EXPECT_LT(max_relative_difference(fused_params, reference_params), 1e-6);
  EXPECT_GT(max_relative_difference(fused_params, make_params()), 1e-3);  // it did move
}

TEST(FusedAdamW, StateRoundTripsThroughLibTorchAdamW) {
  auto params = make_params(), reference_params = make_params();
  FusedAdamW fused(params, options());
  torch::optim::AdamW reference(reference_params, options());
  for (int64_t step = 0; step < 3; ++step) {
    fake_gradients(params, step);
    fake_gradients(reference_params, step);
    fused.step();
    reference.step();
  }
  // Fused state -> LibTorch's AdamW, continue both: the same as LibTorch throughout.
  torch::serialize::OutputArchive out;
  fused.save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  auto continued_params = params;
  for (auto& p : continued_params) p = p.detach().clone();
  torch::optim::AdamW continued(continued_params, options());
  torch::serialize::InputArchive in;
  std::istringstream stream(bytes.str());
  in.load_from(stream);
  continued.load(in);
  for (int64_t step = 3; step < 5; ++step) {
    fake_gradients(continued_params, step);
    fake_gradients(reference_params, step);
    continued.step();
    reference.step();
  }
  EXPECT_LT(max_relative_difference(continued_params, reference_params), 1e-6);
}

TEST(FusedAdamW, OtherDtypesTakeLibTorchsStep) {
  std::vector<torch::Tensor> params{torch::randn({6}, torch::kDouble)};
  std::vector<torch::Tensor> reference{params[0].clone()};
  FusedAdamW fused(params, options());
  torch::optim::AdamW plain(reference, options());
  params[0].mutable_grad() = torch::ones({6}, torch::kDouble);
  reference[0].mutable_grad() = torch::ones({6}, torch::kDouble);
  fused.step();
  plain.step();
  EXPECT_TRUE(torch::equal(params[0], reference[0]));
}
