// split_qkv_heads and split_packed_heads against split + split_heads (the explicit path): the same
// views forward, and the same packed gradient backward for contiguous, strided and missing head
// gradients, with parts of equal and of different widths and head counts.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/attention.h"
#include "model/packed_heads.h"

namespace pelab {
namespace {

TEST(QkvHeads, ViewsAndPackedGradientMatchSplitThenSplitHeads) {
  torch::manual_seed(3);
  const int64_t B = 3, L = 7, H = 4, D = 5, d = H * D;
  auto qkv = torch::randn({B, L, 3 * d}, torch::kDouble).to(torch::kFloat).requires_grad_();
  auto reference_qkv = qkv.detach().clone().requires_grad_();

  const auto parts = split_qkv_heads(qkv, H);
  const auto reference_parts = reference_qkv.split(d, -1);
  for (int part = 0; part < 3; ++part) {
    const auto expected = split_heads(reference_parts[part], H);
    ASSERT_EQ(parts[part].sizes(), expected.sizes());
    EXPECT_TRUE(torch::equal(parts[part], expected)) << "part " << part;
  }
  // Upstream gradients: head-major contiguous for q, token-major (strided) for k; v unused.
  const auto grad_q = torch::randn({B, H, L, D});
  const auto grad_k = torch::randn({B, L, H, D}).transpose(1, 2);
  ASSERT_FALSE(grad_k.is_contiguous());
  const auto loss = (parts[0] * grad_q).sum() + (parts[1] * grad_k).sum();
  loss.backward();
  const auto reference_loss = (split_heads(reference_parts[0], H) * grad_q).sum() +
                              (split_heads(reference_parts[1], H) * grad_k).sum();
  reference_loss.backward();
  EXPECT_TRUE(torch::equal(qkv.grad(), reference_qkv.grad()));
  EXPECT_EQ(qkv.grad().narrow(-1, 2 * d, d).abs().max().item<float>(), 0.0f);  // v unused
}

TEST(PackedHeads, PartsOfDifferentWidthsAndHeadsMatchSplitThenSplitHeads) {
  torch::manual_seed(4);
  // MLA's shapes in small: a latent of 12 channels as one head, a 4-channel rotary key, and
  // 3 heads of 5.
  const std::vector<PackedPart> parts{{12, 1}, {4, 1}, {15, 3}};
  const int64_t B = 2, L = 6, T = 31;
  auto packed = torch::randn({B, L, T}, torch::kDouble).to(torch::kFloat).requires_grad_();
  auto reference_packed = packed.detach().clone().requires_grad_();
  const auto views = split_packed_heads(packed, parts);
  const auto reference_parts = reference_packed.split_with_sizes({12, 4, 15}, -1);
  ASSERT_EQ(views.size(), 3u);
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto expected = split_heads(reference_parts[i], parts[i].heads);
    ASSERT_EQ(views[i].sizes(), expected.sizes()) << "part " << i;
    EXPECT_TRUE(torch::equal(views[i], expected)) << "part " << i;
  }
  // The first part's gradient through a squeeze (how MLA reads its latent), the second unused,
  // the third token-major (strided).
  const auto grad_latent = torch::randn({B, L, 12});
  const auto grad_heads = torch::randn({B, L, 3, 5}).transpose(1, 2);
  const auto loss = (views[0].squeeze(1) * grad_latent).sum() + (views[2] * grad_heads).sum();
  loss.backward();
  const auto reference_loss = (split_heads(reference_parts[0], 1).squeeze(1) * grad_latent).sum() +
                              (split_heads(reference_parts[2], 3) * grad_heads).sum();
  reference_loss.backward();
  EXPECT_TRUE(torch::equal(packed.grad(), reference_packed.grad()));
  EXPECT_EQ(packed.grad().narrow(-1, 12, 4).abs().max().item<float>(), 0.0f);  // unused part
}

TEST(PackedHeads, RefusesPartsThatDoNotFitThePackedTensor) {
  const auto packed = torch::zeros({2, 3, 10});
  EXPECT_THROW(split_packed_heads(packed, {{6, 2}, {3, 1}}), c10::Error);  // widths sum to 9
  EXPECT_THROW(split_packed_heads(packed, {{6, 4}, {4, 1}}), c10::Error);  // 6 not in 4 heads
  EXPECT_THROW(split_packed_heads(packed.to(torch::kDouble), {{6, 2}, {4, 1}}), c10::Error);
  EXPECT_THROW(split_packed_heads(torch::zeros({2, 10, 3}).transpose(1, 2), {{6, 2}, {4, 1}}),
               c10::Error);  // not contiguous
}

TEST(QkvHeads, RefusesAWidthThatIsNotThreeTimesTheHeads) {
  EXPECT_THROW(split_qkv_heads(torch::zeros({2, 3, 10}), 4), c10::Error);
  EXPECT_THROW(split_qkv_heads(torch::zeros({2, 12}), 4), c10::Error);
}

}  // namespace
}  // namespace pelab
