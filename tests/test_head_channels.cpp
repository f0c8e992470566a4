// concat_head_channels against torch::cat of the content with the expanded rotary channel (the
// explicit path): the same values forward, and backward the content's gradient unchanged and the
// shared rotary channel's gradient as the sum over heads, against a double-precision sum.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/attention.h"
#include "model/head_channels.h"

namespace pelab {
namespace {

struct Operands {
  torch::Tensor content, rotary;
};

// content as split_heads leaves it (a strided [B, H, L, dc] view of [B, L, H dc]), rotary
// [B, R, L, dr] from the same kind of view.
Operands make_operands(int64_t B, int64_t H, int64_t L, int64_t dc, int64_t R, int64_t dr) {
  auto content = torch::randn({B, L, H * dc}, torch::kDouble).to(torch::kFloat);
  auto rotary = torch::randn({B, L, R * dr}, torch::kDouble).to(torch::kFloat);
  return {split_heads(content, H).detach().requires_grad_(),
          split_heads(rotary, R).detach().requires_grad_()};
}

void expect_matches_cat(int64_t rotary_heads) {
  torch::manual_seed(11 + rotary_heads);
  const int64_t B = 3, H = 5, L = 9, dc = 7, dr = 6;
  const auto x = make_operands(B, H, L, dc, rotary_heads, dr);
  ASSERT_FALSE(x.content.is_contiguous());
  const auto out = concat_head_channels(x.content, x.rotary);
  const auto expected = torch::cat({x.content, x.rotary.expand({B, H, L, dr})}, -1);
  ASSERT_EQ(out.sizes(), expected.sizes());
  ASSERT_TRUE(out.is_contiguous());
  EXPECT_TRUE(torch::equal(out, expected));

  // An upstream gradient that is not contiguous (token-major), as the attention's may be.
  const auto grad = torch::randn({B, L, H, dc + dr}, torch::kDouble).to(torch::kFloat);
  const auto grad_heads = grad.transpose(1, 2);
  ASSERT_FALSE(grad_heads.is_contiguous());
  (out * grad_heads).sum().backward();
  EXPECT_TRUE(torch::equal(x.content.grad(), grad_heads.narrow(-1, 0, dc)));
  const auto rotary_grad = grad_heads.narrow(-1, dc, dr).to(torch::kDouble);
  const auto reference = rotary_heads == 1 ? rotary_grad.sum(1, true) : rotary_grad;
  ASSERT_EQ(x.rotary.grad().sizes(), reference.sizes());
  EXPECT_TRUE(torch::allclose(x.rotary.grad().to(torch::kDouble), reference, 1e-6, 1e-6))
      << (x.rotary.grad().to(torch::kDouble) - reference).abs().max().item<double>();
}

TEST(HeadChannels, SharedRotaryChannelMatchesCatAndSumsItsGradientOverHeads) {
  expect_matches_cat(1);
}

TEST(HeadChannels, RotaryChannelPerHeadMatchesCat) { expect_matches_cat(5); }

TEST(HeadChannels, SharedGradientIsTheSameBitsAtAnyThreadCount) {
  torch::manual_seed(5);
  const auto x = make_operands(4, 16, 33, 16, 1, 16);
  const auto grad = torch::randn({4, 16, 33, 32});
  std::vector<torch::Tensor> grads;
  const int threads = at::get_num_threads();
  for (int t : {1, 2}) {
    at::set_num_threads(t);
    auto rotary = x.rotary.detach().requires_grad_();
    (concat_head_channels(x.content.detach(), rotary) * grad).sum().backward();
    grads.push_back(rotary.grad().clone());
  }
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(grads[0], grads[1]));
}

TEST(HeadChannels, RefusesMismatchedShapesAndOtherTypes) {
  const auto content = torch::zeros({2, 4, 3, 5});
  EXPECT_THROW(concat_head_channels(content, torch::zeros({2, 2, 3, 4})), c10::Error);  // R
  EXPECT_THROW(concat_head_channels(content, torch::zeros({2, 1, 6, 4})), c10::Error);  // L
  EXPECT_THROW(concat_head_channels(content, torch::zeros({3, 1, 3, 4})), c10::Error);  // B
  EXPECT_THROW(concat_head_channels(content, torch::zeros({2, 1, 3})), c10::Error);     // rank
  EXPECT_THROW(concat_head_channels(content.to(torch::kDouble), torch::zeros({2, 1, 3, 4})),
               c10::Error);
  EXPECT_THROW(concat_head_channels(content.transpose(2, 3), torch::zeros({2, 1, 5, 4})),
               c10::Error);  // channels not contiguous
}

}  // namespace
}  // namespace pelab
