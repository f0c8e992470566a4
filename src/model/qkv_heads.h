// The packed q/k/v projection's output split into heads, with a backward that writes the three
// gradients straight into one packed gradient (docs/PERFORMANCE.md, "The q/k/v split").
#pragma once

#include <torch/torch.h>

#include <array>

namespace pelab {

// qkv [B, L, 3 H D] (q, then k, then v along the last axis) -> {q, k, v}, each a [B, H, L, D]
// view of it. Same values as split(H D, -1) followed by split_heads, but autograd's version of
// that clones each head-major gradient back to [B, L, H D] and then concatenates the three
// (about 12% of a small model's training step); this one copies each gradient row once into
// the packed [B, L, 3 H D] gradient. Its backward is not itself differentiable: the explicit
// path (double back-propagation) keeps split + split_heads.
std::array<torch::Tensor, 3> split_qkv_heads(const torch::Tensor& qkv, int64_t heads);

}  // namespace pelab
