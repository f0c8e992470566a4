#include "model/mla.h"

#include <cmath>

#include "kernels/onednn_linear.h"
#include "model/head_channels.h"
#include "model/packed_heads.h"

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
  query_rope = register_module(
      "query_rope", Linear(LinearOptions(query_in, rotary_queries() * rope_dim_).bias(false)));
  output = register_module("output", Linear(inner, d));
  key_rope_zero_bias_ = torch::zeros({rope_dim_});  // not a parameter: checkpoints stay as they are
}

LatentAttention::Projections LatentAttention::separate_projections(const AttentionInputs& in,
                                                                   bool onednn) {
  auto project = [onednn](const torch::nn::Linear& layer, const torch::Tensor& x) {
    return linear(layer, x, onednn);
  };
  Projections p;
  auto latent_kv = kv_norm(project(kv_down, in.keys_from));  // [B, L, d_c]
  p.k_content = split_heads(project(key_up, latent_kv), heads_);
  p.v = split_heads(project(value_up, latent_kv), heads_);
  p.k_rotary = project(key_rope, in.keys_from).unsqueeze(1);  // [B, 1, L, d_R]
  auto query_source =
      !query_down.is_empty() ? query_norm(project(query_down, in.queries_from)) : in.queries_from;
  p.q_content = split_heads(project(query_up, query_source), heads_);
  p.q_rotary = split_heads(project(query_rope, query_source), rotary_queries());
  return p;
}

// The same projections, one oneDNN product per input: keys_from feeds kv_down and key_rope, the
// latent feeds key_up and value_up, the query source feeds query_up and query_rope. Each takes
// the two weights concatenated and its output is split into views whose gradients go back
// packed (packed_heads.h): per input one dX product instead of two products and an add.
LatentAttention::Projections LatentAttention::packed_projections(const AttentionInputs& in) {
  const int64_t latent = kv_down->weight.size(0), inner = key_up->weight.size(0);
  const int64_t rotary_heads = rotary_queries();
  Projections p;
  const auto from_keys = split_packed_heads(
      linear(in.keys_from, concatenated_weights({kv_down->weight, key_rope->weight}),
             concatenated_weights({kv_down->bias, key_rope_zero_bias_})),
      {{latent, 1}, {rope_dim_, 1}});
  auto latent_kv = kv_norm(from_keys[0].squeeze(1));  // [B, L, d_c]
  p.k_rotary = from_keys[1];                          // [B, 1, L, d_R]
  const auto from_latent = split_packed_heads(
      linear(latent_kv, concatenated_weights({key_up->weight, value_up->weight}), torch::Tensor()),
      {{inner, heads_}, {inner, heads_}});
  p.k_content = from_latent[0];
  p.v = from_latent[1];
  auto query_source =
      !query_down.is_empty() ? query_norm(linear(query_down, in.queries_from)) : in.queries_from;
  const auto from_queries = split_packed_heads(
      linear(query_source, concatenated_weights({query_up->weight, query_rope->weight}),
             torch::Tensor()),
      {{inner, heads_}, {rotary_heads * rope_dim_, rotary_heads}});
  p.q_content = from_queries[0];
  p.q_rotary = from_queries[1];
  return p;
}

torch::Tensor LatentAttention::forward(const AttentionInputs& in) {
  // The explicit path is for double back-propagation: oneDNN's backward is not differentiable.
  const bool onednn = onednn_ && !in.explicit_path;
  // The packed split takes float32 CPU tensors (linear() itself falls back where oneDNN cannot
  // run).
  const bool packed =
      onednn && in.keys_from.scalar_type() == torch::kFloat && in.keys_from.device().is_cpu();
  Projections p = packed ? packed_projections(in) : separate_projections(in, onednn);
  std::tie(p.q_rotary, p.k_rotary) = pe_->rotate(p.q_rotary, p.k_rotary, in.positions);
  // q_C . k_C + q_R . k_R is one dot product over the concatenated channels [d_h + d_R]; the
  // shared rotary key (and query) is broadcast to every head.
  // concat_head_channels is that concatenation in one pass, taken with the packed products;
  // at::linear's path (the explicit one for double back-propagation, CUDA,
  // model.onednn_linear=false) keeps torch::cat, so that it stays an independent reference.
  auto concat = [&](const torch::Tensor& content, const torch::Tensor& rotary) {
    if (packed) return concat_head_channels(content, rotary);
    const auto B = content.size(0), L = content.size(2);
    return torch::cat({content, rotary.expand({B, heads_, L, rope_dim_})}, -1);
  };
  auto q = concat(p.q_content, p.q_rotary);
  auto k = concat(p.k_content, p.k_rotary);
  return project_output(
      output,
      scaled_dot_product_attention(q, k, p.v, {}, 1.0 / std::sqrt(double(head_dim_ + rope_dim_)),
                                   in, attention_dropout_, is_training(), fused_),
      in, onednn);
}

}  // namespace pelab
