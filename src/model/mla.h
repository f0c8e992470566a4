// Multi-head latent attention with decoupled RoPE (DeepSeek-V2, arXiv 2405.04434, section 2.1).
//   c_KV = W_DKV h                         [d_c]        (kv_down, then RMS-normalised)
//   k_C  = W_UK c_KV,  v_C = W_UV c_KV     [H, d_h]     (key_up, value_up)
//   k_R  = RoPE(W_KR h)                    [d_R]        (key_rope: one rotary key for all heads)
//   c_Q  = W_DQ h                          [d_c']       (query_down, RMS-normalised; skipped
//                                                        when mla_q_latent = 0)
//   q_C  = W_UQ c_Q                        [H, d_h]     (query_up)
//   q_R  = RoPE(W_QR c_Q)                  [H, d_R]     (query_rope; [1, d_R] shared by all
//                                                        heads with mla_shared_rotary_query,
//                                                        the authors' variant)
//   logit_{h,i,j} = (q_C,h,i . k_C,h,j + q_R,h,i . k_R,j) / sqrt(d_h + d_R)
// Position enters only through the narrow rotary channel; the content channel is position-free.
#pragma once

#include "model/attention.h"

namespace pelab {

class RmsNormImpl : public torch::nn::Module {
 public:
  explicit RmsNormImpl(int64_t dim, double eps = 1e-6);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

class LatentAttention : public AttentionBlock {
 public:
  LatentAttention(const ModelConfig& config, PositionalEncodingPtr pe);
  torch::Tensor forward(const AttentionInputs& inputs) override;

  torch::nn::Linear kv_down{nullptr}, key_up{nullptr}, value_up{nullptr}, key_rope{nullptr};
  torch::nn::Linear query_down{nullptr}, query_up{nullptr}, query_rope{nullptr};
  torch::nn::Linear output{nullptr};
  RmsNorm kv_norm{nullptr}, query_norm{nullptr};

 private:
  // The projections of one forward pass: [B, H, L, d_h] content, [B, 1 or H, L, d_R] rotary.
  struct Projections {
    torch::Tensor q_content, q_rotary, k_content, k_rotary, v;
  };
  Projections separate_projections(const AttentionInputs& inputs, bool onednn);
  Projections packed_projections(const AttentionInputs& inputs);
  int64_t rotary_queries() const { return shared_rotary_query_ ? 1 : heads_; }

  int64_t heads_, head_dim_, rope_dim_;
  bool shared_rotary_query_;
  double attention_dropout_;
  bool fused_;
  bool onednn_;  // linear layers through oneDNN (model.onednn_linear)
  PositionalEncodingPtr pe_;
  torch::Tensor key_rope_zero_bias_;  // key_rope has no bias: zeros beside kv_down's in one product
};

}  // namespace pelab
