// Attention blocks on the explicit path: logits, the PE's bias, the mask, softmax and dropout are
// separate LibTorch ops, so analysis can read logits and probabilities and mask heads.
// Two kinds share one interface: standard multi-head attention (every PE but mla) and
// multi-head latent attention (mla.h).
#pragma once

#include <torch/torch.h>

#include "config/config.h"
#include "pe/pe.h"

namespace pelab {

// Optional taps for analysis: when a pointer is set, the block stores its tensors there.
struct AttentionRecord {
  torch::Tensor logits;         // [B, H, L, L] before the mask and softmax (bias included)
  torch::Tensor probabilities;  // [B, H, L, L] after softmax (before attention dropout)
  torch::Tensor head_outputs;   // [B, H, L, Dv] each head's output before the merge
};

struct AttentionInputs {
  torch::Tensor queries_from;   // [B, L, d_model]: the normalised residual stream
  torch::Tensor keys_from;      // [B, L, d_model]: residual stream or input embeddings
  torch::Tensor additive_mask;  // broadcastable to [B, H, L, L] with 0 / -inf; undefined = none
  torch::Tensor positions;      // [L] int64
  int64_t layer = 0;
  AttentionRecord* record = nullptr;
  // Head interventions (analysis). head_gate [B, H] scales each head's output (0 = removed);
  // where set, head_replacement [H, L, Dv] fills in the removed share: out g + (1 - g) r.
  torch::Tensor head_gate;
  torch::Tensor head_replacement;
  // Use the explicit path even where the fused kernel could run: double back-propagation
  // (Hessian-vector products) needs autograd through every op, which the fused backward lacks.
  bool explicit_path = false;
  // Where defined ([B, L, d_model]: the residual stream, when the block's dropout is inactive),
  // forward returns residual + its output; in inference the output projection adds it inside
  // its product (linear_add), a pass over the stream less.
  torch::Tensor residual;
};

class AttentionBlock : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const AttentionInputs& inputs) = 0;
};

// Softmax over keys, attention dropout, weighted sum of values and the head merge, shared by
// both attention kinds. logits: [B, H, L, L] (scaled, bias added); values: [B, H, L, Dv].
// Returns [B, L, H * Dv].
torch::Tensor attend(torch::Tensor logits, const torch::Tensor& values, const AttentionInputs& in,
                     double attention_dropout, bool training);

// The output projection of mixed [B, L, H Dv], plus in.residual where it is defined.
torch::Tensor project_output(const torch::nn::Linear& output, const torch::Tensor& mixed,
                             const AttentionInputs& in, bool use_onednn);

// [B, L, H * D] -> [B, H, L, D]
torch::Tensor split_heads(const torch::Tensor& x, int64_t heads);

// Attention from scaled logits q k^T * scale (+ bias): through the fused kernels
// (src/kernels) when `fused` is set and nothing needs the explicit path (an AttentionRecord, head
// gates, tensors that are not float32 on the CPU); otherwise explicit logits and attend().
// bias: undefined or [H, L, L]. rotation: undefined, or RoPE's tables for the fused kernels to
// apply (q and k unrotated; only where takes_fused_path). Returns [B, L, H * Dv].
torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& v, const torch::Tensor& bias,
                                           double scale, const AttentionInputs& in,
                                           double attention_dropout, bool training, bool fused,
                                           const RotaryTables& rotation = {});

// Whether scaled_dot_product_attention will run the fused kernels for these operands.
bool takes_fused_path(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                      const torch::Tensor& bias, const AttentionInputs& in, bool fused);

// The PE's bias [H, L, L] at `positions` (sorted, distinct): bias(L, layer) for 0..L-1, else the
// rows and columns of bias(max + 1, layer) at those positions (model.random_positions).
torch::Tensor positional_bias(const PositionalEncoding& pe, const torch::Tensor& positions,
                              int64_t length, int64_t layer);

class MultiHeadAttention : public AttentionBlock {
 public:
  MultiHeadAttention(const ModelConfig& config, PositionalEncodingPtr pe);
  torch::Tensor forward(const AttentionInputs& inputs) override;

  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr}, output{nullptr};

 private:
  int64_t heads_;
  int64_t head_dim_;
  double attention_dropout_;
  bool fused_;
  bool onednn_;               // linear layers through oneDNN (model.onednn_linear)
  PositionalEncodingPtr pe_;  // shared with the model; not registered here
};

}  // namespace pelab
