// Fused CPU attention: logits, the PE's bias, the mask, softmax, dropout on the weights and the
// product with the values in one pass per (batch, head), forward and backward, registered with
// LibTorch's autograd. It never materialises a [B, H, Lq, Lk] tensor: backward recomputes the
// logits from q and k and the saved softmax statistics, and regenerates the dropout mask from
// its seed. src/model/attention.cpp routes attention through it whenever analysis does not need
// the explicit path (see fused_attention_supported and model.fused_attention).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "pe/rotary.h"

namespace pelab {

// True when fused_attention can take these operands: float32 CPU tensors shaped as below, a
// mask that needs no gradient, and a kernel for this CPU.
bool fused_attention_supported(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& bias,
                               const torch::Tensor& additive_mask);

// softmax(scale q k^T + bias + additive_mask) with dropout on the weights, times v, heads merged.
//   q: [B, H, Lq, Dk], k: [B, H, Lk, Dk], v: [B, H, Lk, Dv] (any strides);
//   bias: undefined or [H, Lq, Lk] (may require grad: learned relative biases);
//   additive_mask: undefined or broadcastable to [B, H, Lq, Lk], 0 / -inf;
//   dropout_p: drop probability of the attention weights (pass 0 outside training); the mask
//   comes from a seed drawn from LibTorch's default generator, so a seeded run repeats exactly.
//   rotation: undefined, or RoPE's tables (rotary.h): q and k are then rotated inside the
//   kernels, as the PE's rotate() would have rotated them first (the same bits), and their
//   gradients are those of the unrotated q and k. Tables [Lq, pairs] and [Lk, pairs] with
//   2 pairs <= Dk, not requiring grad.
// Returns [B, Lq, H * Dv], differentiable in q, k, v and bias. A query row whose keys are all
// masked gets zero output (the explicit path gives NaN).
torch::Tensor fused_attention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, const torch::Tensor& bias,
                              const torch::Tensor& additive_mask, double scale, double dropout_p,
                              const RotaryTables& rotation = {});

// The instruction sets this CPU can run the kernels with, best first ("avx512", "avx2",
// "generic"); the kernels in use on this thread (the best, or $PELAB_KERNEL_ISA when set; under a
// Bf16ProductsGuard, "avx512bf16" in place of "avx512" where the CPU has AVX512_BF16: the same
// kernels with bf16 products, unless $PELAB_FLOAT32_ATTENTION=1; "amx" where it has AMX-BF16
// too: those kernels with their products on AMX tiles, the same bits); and a way to choose one
// (tests compare them, benchmarks time them). Throws std::invalid_argument for an unusable name.
std::vector<std::string> fused_attention_isas();
std::string fused_attention_isa();
void set_fused_attention_isa(const std::string& name);
// Whether this build and CPU can run the bf16 products on AMX tiles, and a switch for them (on
// by default; $PELAB_BF16_ATTENTION_TILES=0 starts it off), process-wide.
bool amx_attention_tiles_available();
void use_amx_attention_tiles(bool use);

}  // namespace pelab
