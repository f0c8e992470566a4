// The tests' own attention: an explicit computation written independently of src/model, the
// masks the tests use, and the error measure they compare with (test_fused_attention*.cpp).
#pragma once

#include <torch/torch.h>

#include <limits>
#include <string>

namespace pelab::testing_reference {

// A test case's sizes: q, k [batch, heads, length, qk_dim], v [batch, heads, length, v_dim].
struct AttentionShape {
  int64_t batch, heads, length, qk_dim, v_dim;
};

// An ALiBi-like bias [heads, length, length], slopes 1 down to 0.4: logits reach -(length - 1).
inline torch::Tensor steep_bias(int64_t heads, int64_t length) {
  const auto distance = (torch::arange(length).unsqueeze(1) - torch::arange(length).unsqueeze(0))
                            .abs()
                            .to(torch::kFloat);
  return -torch::linspace(1.0, 0.4, heads).view({heads, 1, 1}) * distance.unsqueeze(0);
}

inline double relative_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  const double scale = expected.norm().item<double>();
  const double diff = (actual - expected).norm().item<double>();
  return scale > 0 ? diff / scale : diff;
}

// The explicit computation, written independently of src/model: [B, L, H * Dv].
inline torch::Tensor explicit_attention(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, const torch::Tensor& bias,
                                        const torch::Tensor& mask, double scale,
                                        const torch::Tensor& dropout_keep = {},
                                        double dropout_p = 0) {
  auto logits = torch::matmul(q, k.transpose(-2, -1)) * scale;
  if (bias.defined()) logits = logits + bias;
  if (mask.defined()) logits = logits + mask;
  auto probabilities = torch::softmax(logits, -1);
  if (dropout_keep.defined()) probabilities = probabilities * dropout_keep / (1 - dropout_p);
  auto mixed = torch::matmul(probabilities, v);
  return mixed.transpose(1, 2).reshape({q.size(0), q.size(2), -1});
}

inline torch::Tensor make_mask(const std::string& kind, int64_t batch, int64_t length) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (kind == "padding") {
    auto lengths = torch::randint(1, length + 1, {batch}, torch::kLong);
    lengths[0] = length;
    auto valid = torch::arange(length).unsqueeze(0) < lengths.unsqueeze(1);
    return torch::zeros({batch, length})
        .masked_fill(valid.logical_not(), neg_inf)
        .view({batch, 1, 1, length});
  }
  if (kind == "causal")
    return torch::full({length, length}, neg_inf).triu(1).view({1, 1, length, length});
  return {};
}

}  // namespace pelab::testing_reference
