#include "model/transformer.h"

#include <fmt/format.h>

#include <limits>

#include "kernels/fused_dropout.h"
#include "kernels/layer_norm.h"
#include "kernels/onednn_feed_forward.h"
#include "kernels/onednn_linear.h"
#include "model/mla.h"

namespace pelab {

BlockImpl::BlockImpl(const ModelConfig& c, PositionalEncodingPtr pe)
    : keys_from_embeddings_(c.kv_source == "embedding"),
      gelu_(c.activation == "gelu"),
      dropout_(c.dropout),
      onednn_(c.onednn_linear) {
  attention_norm = register_module("attention_norm",
                                   torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
  if (pe->kind() == PeKind::kLatentAttention) {
    attention = register_module("attention", std::make_shared<LatentAttention>(c, pe));
  } else {
    attention = register_module("attention", std::make_shared<MultiHeadAttention>(c, pe));
  }
  ffn_norm =
      register_module("ffn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
  ffn_in = register_module("ffn_in", torch::nn::Linear(c.d_model, c.d_ff));
  ffn_out = register_module("ffn_out", torch::nn::Linear(c.d_ff, c.d_model));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& embeddings,
                                 AttentionInputs in) {
  // The explicit path is for double back-propagation: oneDNN's backward is not differentiable.
  const bool onednn = onednn_ && !in.explicit_path;
  // Under bf16 products in inference, normed is the products' bf16 operand (layer_norm.h).
  auto normed = layer_norm(attention_norm, x, in.explicit_path, onednn);
  in.queries_from = normed;
  in.keys_from = keys_from_embeddings_ ? embeddings : normed;
  // Without dropout the residual adds go to the output products (in inference, inside them).
  const bool dropout_active = is_training() && dropout_ > 0;
  torch::Tensor h;
  if (dropout_active) {
    h = dropout_add(x, attention->forward(in), dropout_, true);
  } else {
    in.residual = x;
    h = attention->forward(in);
  }
  const auto ffn_normed = layer_norm(ffn_norm, h, in.explicit_path, onednn);
  if (!gelu_)
    return dropout_active
               ? dropout_add(h, feed_forward(ffn_in, ffn_out, ffn_normed, onednn), dropout_, true)
               : feed_forward_add(ffn_in, ffn_out, ffn_normed, h, onednn);
  auto f = torch::gelu(linear(ffn_in, ffn_normed, onednn));
  return dropout_active ? dropout_add(h, linear(ffn_out, f, onednn), dropout_, true)
                        : linear_add(ffn_out, f, h, onednn);
}

TransformerImpl::TransformerImpl(const ModelConfig& c, int64_t vocab_size, int64_t num_classes,
                                 int64_t max_len)
    : config_(c), max_len_(max_len) {
  // Randomized positions reach up to max_position - 1 in training: the PE must cover them.
  const int64_t pe_len = c.random_positions ? std::max(max_len, c.max_position) : max_len;
  pe = register_module("pe", make_pe(PeOptions{c, pe_len}));
  token_embedding = register_module("token_embedding", torch::nn::Embedding(vocab_size, c.d_model));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t l = 0; l < c.n_layers; ++l) blocks->push_back(Block(c, pe));
  if (c.final_norm)
    final_norm = register_module("final_norm",
                                 torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
  classifier = register_module("classifier", torch::nn::Linear(c.d_model, num_classes));
}

torch::Tensor TransformerImpl::additive_mask(const torch::Tensor& valid) const {
  const auto L = valid.size(1);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (config_.mask == "padding") {
    // [B, 1, 1, L]: no query attends to a pad key.
    auto zeros = torch::zeros(valid.sizes(), torch::kFloat);
    return zeros.masked_fill(valid.logical_not(), neg_inf).view({valid.size(0), 1, 1, L});
  }
  if (config_.mask == "causal") {
    // Right padding means a valid query never sees a pad key under the causal mask.
    return torch::full({L, L}, neg_inf).triu(1).view({1, 1, L, L});
  }
  return {};
}

ForwardState ForwardState::repeat(int64_t times) const {
  ForwardState r = *this;
  r.x = x.repeat({times, 1, 1});
  r.embeddings = embeddings.repeat({times, 1, 1});
  r.valid = valid.repeat({times, 1});
  if (inputs.additive_mask.defined() && inputs.additive_mask.size(0) > 1)
    r.inputs.additive_mask = inputs.additive_mask.repeat({times, 1, 1, 1});
  return r;
}

torch::Tensor random_positions(int64_t length, int64_t max_position) {
  TORCH_CHECK(length <= max_position, "random positions: ", length, " positions from [0, ",
              max_position, ")");
  return std::get<0>(torch::randperm(max_position, torch::kLong).narrow(0, 0, length).sort());
}

ForwardState TransformerImpl::begin(const torch::Tensor& tokens, const torch::Tensor& lengths) {
  const auto L = tokens.size(1);
  TORCH_CHECK(L <= max_len_, "sequence length ", L, " exceeds the model's max_len ", max_len_);
  ForwardState s;
  s.x = token_embedding(tokens);
  s.inputs.positions = config_.random_positions && is_training()
                           ? random_positions(L, config_.max_position)
                           : torch::arange(L, torch::kLong);
  const int64_t span = L == 0 ? 0 : s.inputs.positions[-1].item<int64_t>() + 1;
  auto absolute = pe->embedding(span);
  if (absolute.defined())
    s.x = s.x + (span == L ? absolute : absolute.index_select(0, s.inputs.positions)).unsqueeze(0);
  s.x = dropout_add({}, s.x, config_.dropout, is_training());
  s.embeddings = s.x;
  s.valid = torch::arange(L, torch::kLong).unsqueeze(0) < lengths.unsqueeze(1);  // [B, L]
  s.inputs.additive_mask = additive_mask(s.valid);
  return s;
}

void TransformerImpl::run_block(ForwardState& s, int64_t layer, const torch::Tensor& head_gate,
                                const torch::Tensor& head_replacement, AttentionRecord* record) {
  AttentionInputs in = s.inputs;
  in.layer = layer;
  in.record = record;
  in.head_gate = head_gate;
  in.head_replacement = head_replacement;
  s.x = blocks[layer]->as<Block>()->forward(s.x, s.embeddings, in);
}

torch::Tensor TransformerImpl::finish(const ForwardState& s) {
  auto x = final_norm.is_empty() ? s.x : layer_norm(final_norm, s.x, s.inputs.explicit_path, false);
  torch::Tensor pooled;
  if (config_.pooling == "valid") {
    auto weights = s.valid.to(x.dtype()).unsqueeze(2);  // [B, L, 1]
    pooled = (x * weights).sum(1) / weights.sum(1).clamp_min(1.0);
  } else {
    pooled = x.mean(1);  // authors: pads are averaged in
  }
  return linear(classifier, pooled, config_.onednn_linear && !s.inputs.explicit_path);
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens, const torch::Tensor& lengths,
                                       const ForwardOptions& options) {
  ForwardState s = begin(tokens, lengths);
  s.inputs.explicit_path = options.explicit_attention;
  const auto layers = static_cast<int64_t>(blocks->size());
  if (options.attention_records) options.attention_records->assign(layers, {});
  for (int64_t l = 0; l < layers; ++l)
    run_block(s, l, {}, {}, options.attention_records ? &(*options.attention_records)[l] : nullptr);
  return finish(s);
}

Transformer build_model(const Config& config) {
  torch::manual_seed(static_cast<uint64_t>(config.train.seed));
  return Transformer(config.model, config.task.vocab_size, num_classes(config.task),
                     config.task.seq_len);
}

}  // namespace pelab
