#include "model/mla.h"

#include <cmath>

#include "kernels/onednn_linear.h"

namespace pelab {

RmsNormImpl::RmsNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps_) * weight;
}

LatentAttention::LatentAttention(const ModelConfig& c, PositionalEncodingPtr pe)
    : heads_(c.n_heads),
      head_dim_(c.d_model / c.n_heads),
      rope_dim_(c.mla_rope_dim),
      shared_rotary_query_(c.mla_shared_rotary_query),
      attention_dropout_(c.attention_dropout),
      fused_(c.fused_attention),
      onednn_(c.onednn_linear),
      pe_(std::move(pe)) {
  using torch::nn::Linear;
  using torch::nn::LinearOptions;
  const auto d = c.d_model, inner = c.n_heads * head_dim_;
  kv_down = register_module("kv_down", Linear(d, c.mla_kv_latent));
  kv_norm = register_module("kv_norm", RmsNorm(c.mla_kv_latent));
  key_up = register_module("key_up", Linear(LinearOptions(c.mla_kv_latent, inner).bias(false)));
  value_up = register_module("value_up", Linear(LinearOptions(c.mla_kv_latent, inner).bias(false)));
  key_rope = register_module("key_rope", Linear(LinearOptions(d, rope_dim_).bias(false)));
  int64_t query_in = d;
  if (c.mla_q_latent > 0) {
    query_down = register_module("query_down", Linear(d, c.mla_q_latent));
    query_norm = register_module("query_norm", RmsNorm(c.mla_q_latent));
    query_in = c.mla_q_latent;
  }
  query_up = register_module("query_up", Linear(LinearOptions(query_in, inner).bias(false)));
  const int64_t rotary_queries = shared_rotary_query_ ? 1 : heads_;
  query_rope = register_module(
      "query_rope", Linear(LinearOptions(query_in, rotary_queries * rope_dim_).bias(false)));
  output = register_module("output", Linear(inner, d));
}

torch::Tensor LatentAttention::forward(const AttentionInputs& in) {
  // The explicit path is for double back-propagation: oneDNN's backward is not differentiable.
  const bool onednn = onednn_ && !in.explicit_path;
  auto project = [onednn](const torch::nn::Linear& layer, const torch::Tensor& x) {
    return linear(layer, x, onednn);
  };
  auto latent_kv = kv_norm(project(kv_down, in.keys_from));  // [B, L, d_c]
  auto k_content = split_heads(project(key_up, latent_kv), heads_);
  auto v = split_heads(project(value_up, latent_kv), heads_);
  auto k_rotary = project(key_rope, in.keys_from).unsqueeze(1);  // [B, 1, L, d_R]
  auto query_source =
      !query_down.is_empty() ? query_norm(project(query_down, in.queries_from)) : in.queries_from;
  auto q_content = split_heads(project(query_up, query_source), heads_);
  auto q_rotary = split_heads(project(query_rope, query_source), shared_rotary_query_ ? 1 : heads_);
  std::tie(q_rotary, k_rotary) = pe_->rotate(q_rotary, k_rotary, in.positions);
  // q_C . k_C + q_R . k_R is one dot product over the concatenated channels [d_h + d_R]; the
  // shared rotary key (and query) is broadcast to every head.
  const auto B = q_content.size(0), L = q_content.size(2);
  auto q = torch::cat({q_content, q_rotary.expand({B, heads_, L, rope_dim_})}, -1);
  auto k = torch::cat({k_content, k_rotary.expand({B, heads_, k_rotary.size(2), rope_dim_})}, -1);
  return project_output(
      output,
      scaled_dot_product_attention(q, k, v, {}, 1.0 / std::sqrt(double(head_dim_ + rope_dim_)), in,
                                   attention_dropout_, is_training(), fused_),
      in, onednn);
}

}  // namespace pelab
