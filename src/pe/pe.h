// The positional-encoding interface. A PE answers four questions and nothing else in pelab needs
// to know which PE it is (docs/PE.md gives each one's equation):
//   1. embedding(L):          what it adds to the token embeddings (absolute PEs),
//   2. rotate(q, k, pos):     how it transforms queries and keys (the RoPE family; the same
//                             rotation as tables, rotary_tables(pos), for the fused kernels),
//   3. bias(L, layer):        what it adds to the [heads, L, L] attention logits (T5, ALiBi, ...),
//   4. kernel(n, layer):      its positional kernel(s), for the spectral analysis.
// A contextual PE (CoPE) answers one more: contextual_bias(q, k, mask, layer), a bias computed
// from the queries and keys themselves.
// MLA is an attention block of its own (src/model/mla.*); its PE object supplies the rotation
// of the narrow rotary channel.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "pe/rotary.h"

namespace pelab {

enum class PeKind {
  kNone,             // nope
  kAbsolute,         // adds p_i to the embeddings
  kRotary,           // rotates q and k
  kRotaryAbsolute,   // both (rope_abs)
  kBias,             // adds a Toeplitz bias to the logits
  kLatentAttention,  // MLA: its own attention block with a decoupled rotary channel
  kContextual,       // adds a content-dependent bias to the logits (cope); no fixed kernel
};
const char* pe_kind_name(PeKind kind);

// Everything a PE may need to build itself.
struct PeOptions {
  ModelConfig model;
  int64_t max_len = 128;  // longest sequence the model will see
};

class PositionalEncoding : public torch::nn::Module {
 public:
  ~PositionalEncoding() override = default;
  virtual std::string name() const = 0;
  virtual PeKind kind() const = 0;

  // [length, d_model] added to the token embeddings; undefined tensor when the PE adds nothing.
  virtual torch::Tensor embedding(int64_t length) const;

  // q, k: [batch, heads, length, head_dim]; positions: [length] int64 (position of each row).
  // Returns the rotated pair; the default returns them unchanged.
  virtual std::pair<torch::Tensor, torch::Tensor> rotate(const torch::Tensor& q,
                                                         const torch::Tensor& k,
                                                         const torch::Tensor& positions) const;

  // The rotation rotate() applies, as tables for a kernel that applies it itself while it packs
  // q and k (the fused attention; rotary.h). Undefined, the default, for a PE that does not
  // rotate or whose rotation is not a RoPE-family turn of dims pairs: then rotate() is called.
  virtual RotaryTables rotary_tables(const torch::Tensor& positions) const;

  // [heads, length, length] added to the logits of `layer`; undefined when the PE adds nothing.
  virtual torch::Tensor bias(int64_t length, int64_t layer) const;

  // Contextual PEs: [B, H, L, L] added to the logits of `layer`, computed from q, k [B, H, L, D]
  // (after rotate) and the additive mask (0 / -inf, broadcastable; undefined = none).
  // Undefined for every other PE (the default).
  virtual torch::Tensor contextual_bias(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& additive_mask, int64_t layer) const;

  // Positional kernel(s) for n positions as float64 [K, n, n]:
  //   bias PEs: B of every head (K = heads); RoPE family: the real kernel
  //   T_ij = mean_t cos((i-j) theta_t) of each rotated head (K = rotated heads);
  //   absolute PEs: G_pp = P P^T (K = 1); nope: undefined.
  virtual torch::Tensor kernel(int64_t n, int64_t layer) const;
};

using PositionalEncodingPtr = std::shared_ptr<PositionalEncoding>;

struct PeInfo {
  std::string name;
  PeKind kind;
  std::string summary;  // one line for `pelab pe list`
};

// Every registered PE, in a stable order.
const std::vector<PeInfo>& pe_list();
std::vector<std::string> pe_names();
// Builds the PE named options.model.pe; throws ConfigError for an unknown name or bad options.
PositionalEncodingPtr make_pe(const PeOptions& options);

}  // namespace pelab
