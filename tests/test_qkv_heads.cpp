// split_qkv_heads against split + split_heads (the explicit path): the same views forward, and
// the same packed gradient backward for contiguous, strided and missing head gradients.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/attention.h"
#include "model/qkv_heads.h"

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

TEST(QkvHeads, RefusesAWidthThatIsNotThreeTimesTheHeads) {
  EXPECT_THROW(split_qkv_heads(torch::zeros({2, 3, 10}), 4), c10::Error);
  EXPECT_THROW(split_qkv_heads(torch::zeros({2, 12}), 4), c10::Error);
}

}  // namespace
}  // namespace pelab
