// The classifier the study trains: token embedding (+ absolute PE) -> pre-LN blocks -> optional
// final LayerNorm -> mean pooling -> linear classifier. Authors' quirks are options
// (model.mask, model.kv_source, model.pooling; PAPER.md section 5).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "config/config.h"
#include "model/attention.h"
#include "pe/pe.h"

namespace pelab {

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& config, PositionalEncodingPtr pe);
  // x: residual stream; embeddings: the input embeddings (keys/values with kv_source=embedding).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& embeddings,
                        AttentionInputs inputs);

  torch::nn::LayerNorm attention_norm{nullptr}, ffn_norm{nullptr};
  std::shared_ptr<AttentionBlock> attention;
  torch::nn::Linear ffn_in{nullptr}, ffn_out{nullptr};

 private:
  bool keys_from_embeddings_;
  bool gelu_;
  double dropout_;
  bool onednn_;  // linear layers through oneDNN (model.onednn_linear)
};
TORCH_MODULE(Block);

// Per-forward options for analysis; the defaults give the plain forward pass.
struct ForwardOptions {
  std::vector<AttentionRecord>* attention_records = nullptr;  // one per layer when set
  bool explicit_attention = false;  // never the fused kernel (twice-differentiable)
};

// The forward pass in pieces, so analysis can branch off at any layer (head ablation reuses the
// layers below the ablated one). forward() = begin, every block, finish.
struct ForwardState {
  torch::Tensor x;           // residual stream [B, L, d]
  torch::Tensor embeddings;  // input embeddings [B, L, d]
  torch::Tensor valid;       // [B, L] bool
  AttentionInputs inputs;    // mask and positions
  // The same state with every sample repeated `times` times (sample-major blocks of B).
  ForwardState repeat(int64_t times) const;
};

// model.random_positions (Ruoss et al. 2023): `length` distinct positions drawn uniformly from
// [0, max_position) with LibTorch's default generator (seeded by train.seed, saved in
// checkpoints), sorted ascending. [length] int64.
torch::Tensor random_positions(int64_t length, int64_t max_position);

class TransformerImpl : public torch::nn::Module {
 public:
  TransformerImpl(const ModelConfig& config, int64_t vocab_size, int64_t num_classes,
                  int64_t max_len);
  // tokens: [B, L] int64; lengths: [B] int64. Returns class logits [B, num_classes].
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& lengths,
                        const ForwardOptions& options = {});

  ForwardState begin(const torch::Tensor& tokens, const torch::Tensor& lengths);
  // Runs block `layer` on state.x; gate/replacement/record as in AttentionInputs.
  void run_block(ForwardState& state, int64_t layer, const torch::Tensor& head_gate = {},
                 const torch::Tensor& head_replacement = {}, AttentionRecord* record = nullptr);
  torch::Tensor finish(const ForwardState& state);  // final norm, pooling, classifier

  const ModelConfig& config() const { return config_; }
  PositionalEncodingPtr pe;
  torch::nn::Embedding token_embedding{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};
  torch::nn::Linear classifier{nullptr};

 private:
  torch::Tensor additive_mask(const torch::Tensor& valid) const;
  ModelConfig config_;
  int64_t max_len_;
};
TORCH_MODULE(Transformer);

// Builds the model a run's configuration describes, seeded with train.seed.
Transformer build_model(const Config& config);

}  // namespace pelab
