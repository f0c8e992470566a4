#include "model/attention.h"

#include <cmath>

#include "kernels/fused_attention.h"
#include "kernels/onednn_linear.h"
#include "model/packed_heads.h"

namespace pelab {

torch::Tensor split_heads(const torch::Tensor& x, int64_t heads) {
  const auto B = x.size(0), L = x.size(1);
  return x.view({B, L, heads, x.size(2) / heads}).transpose(1, 2);
}

torch::Tensor attend(torch::Tensor logits, const torch::Tensor& values, const AttentionInputs& in,
                     double attention_dropout, bool training) {
  if (in.record) in.record->logits = logits.detach();
  if (in.additive_mask.defined()) logits = logits + in.additive_mask;
  auto probabilities = torch::softmax(logits, -1);
  if (in.record) in.record->probabilities = probabilities.detach();
  if (attention_dropout > 0 && training)
    probabilities = torch::dropout(probabilities, attention_dropout, true);
  auto mixed = torch::matmul(probabilities, values);  // [B, H, L, Dv]
  if (in.record) in.record->head_outputs = mixed.detach();
  if (in.head_gate.defined()) {
    auto gate = in.head_gate.to(mixed.dtype()).view({mixed.size(0), mixed.size(1), 1, 1});
    mixed = mixed * gate;
    if (in.head_replacement.defined()) mixed = mixed + (1 - gate) * in.head_replacement;
  }
  const auto B = mixed.size(0), H = mixed.size(1), L = mixed.size(2), Dv = mixed.size(3);
  return mixed.transpose(1, 2).reshape({B, L, H * Dv});
}

torch::Tensor project_output(const torch::nn::Linear& output, const torch::Tensor& mixed,
                             const AttentionInputs& in, bool use_onednn) {
  return in.residual.defined() ? linear_add(output, mixed, in.residual, use_onednn)
                               : linear(output, mixed, use_onednn);
}

torch::Tensor positional_bias(const PositionalEncoding& pe, const torch::Tensor& positions,
                              int64_t length, int64_t layer) {
  const int64_t span = positions.size(0) == 0 ? 0 : positions[-1].item<int64_t>() + 1;
  if (span <= length) return pe.bias(length, layer);  // positions 0..L-1
  // Randomized positions (sorted, distinct): B at those positions, taken from B over the span.
  auto full = pe.bias(span, layer);
  if (!full.defined()) return full;
  return full.index_select(1, positions).index_select(2, positions);
}

bool takes_fused_path(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                      const torch::Tensor& bias, const AttentionInputs& in, bool fused) {
  const bool explicit_needed =
      in.explicit_path || in.record || in.head_gate.defined() || in.head_replacement.defined();
  return fused && !explicit_needed && fused_attention_supported(q, k, v, bias, in.additive_mask);
}

torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& v, const torch::Tensor& bias,
                                           double scale, const AttentionInputs& in,
                                           double attention_dropout, bool training, bool fused,
                                           const RotaryTables& rotation) {
  if (takes_fused_path(q, k, v, bias, in, fused))
    return fused_attention(q, k, v, bias, in.additive_mask, scale,
                           training ? attention_dropout : 0.0, rotation);
  TORCH_CHECK(!rotation.defined(),
              "scaled_dot_product_attention: RoPE tables given for the explicit path (rotate q "
              "and k first; only the fused kernels apply the tables)");
  auto logits = torch::matmul(q, k.transpose(-2, -1)) * scale;
  if (bias.defined()) logits = logits + bias;
  return attend(logits, v, in, attention_dropout, training);
}

MultiHeadAttention::MultiHeadAttention(const ModelConfig& config, PositionalEncodingPtr pe)
    : heads_(config.n_heads),
      head_dim_(config.d_model / config.n_heads),
      attention_dropout_(config.attention_dropout),
      fused_(config.fused_attention),
      onednn_(config.onednn_linear),
      pe_(std::move(pe)) {
  const auto d = config.d_model;
  query = register_module("query", torch::nn::Linear(d, d));
  key = register_module("key", torch::nn::Linear(d, d));
  value = register_module("value", torch::nn::Linear(d, d));
  output = register_module("output", torch::nn::Linear(d, d));
}

torch::Tensor MultiHeadAttention::forward(const AttentionInputs& in) {
  // The explicit path is for double back-propagation: oneDNN's backward is not differentiable.
  const bool onednn = onednn_ && !in.explicit_path;
  torch::Tensor q, k, v;
  if (in.keys_from.is_same(in.queries_from)) {
    // One product for q, k and v (the weights concatenated each step: 3 d^2 floats, next to
    // a [B L, d] x [d, 3 d] product), then strided views: the kernels take any strides.
    // split_qkv_heads writes the three gradients into one packed gradient; the explicit path
    // (double back-propagation) splits with split, not three narrows: its backward concatenates
    // the three gradients once, where each narrow's would zero-fill a full [B L, 3 d] gradient.
    const auto d = query->weight.size(0);
    auto qkv =
        linear(in.queries_from, concatenated_weights({query->weight, key->weight, value->weight}),
               concatenated_weights({query->bias, key->bias, value->bias}), onednn);
    if (!in.explicit_path && qkv.is_contiguous() && qkv.scalar_type() == torch::kFloat &&
        qkv.device().is_cpu()) {
      const auto parts = split_qkv_heads(qkv, heads_);
      q = parts[0];
      k = parts[1];
      v = parts[2];
    } else {
      const auto parts = qkv.split(d, -1);
      q = split_heads(parts[0], heads_);
      k = split_heads(parts[1], heads_);
      v = split_heads(parts[2], heads_);
    }
  } else {
    q = split_heads(linear(query, in.queries_from, onednn), heads_);
    k = split_heads(linear(key, in.keys_from, onednn), heads_);
    v = split_heads(linear(value, in.keys_from, onednn), heads_);
  }
  auto bias = positional_bias(*pe_, in.positions, q.size(2), in.layer);
  // A RoPE-family rotation is left to the fused kernels, which turn q and k as they pack them
  // (one pass over q and k less, forward and backward); elsewhere q and k are rotated here.
  RotaryTables rotation;
  if (pe_->kind() != PeKind::kContextual && takes_fused_path(q, k, v, bias, in, fused_))
    rotation = pe_->rotary_tables(in.positions);
  if (!rotation.defined()) std::tie(q, k) = pe_->rotate(q, k, in.positions);
  auto contextual = pe_->contextual_bias(q, k, in.additive_mask, in.layer);
  if (contextual.defined()) bias = bias.defined() ? bias + contextual : contextual;
  return project_output(
      output,
      scaled_dot_product_attention(q, k, v, bias, 1.0 / std::sqrt(double(head_dim_)), in,
                                   attention_dropout_, is_training(), fused_, rotation),
      in, onednn);
}

}  // namespace pelab
