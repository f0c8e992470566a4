// A product's output that packs several projections along its last axis (q, k and v; MLA's
// latent and rotary key; ...), split into head-major views, with a backward that writes every
// part's gradient straight into one packed gradient (docs/PERFORMANCE.md, "The q/k/v split").
// Autograd's own split + split_heads clones each head-major gradient back to [B, L, width] and
// then concatenates the parts (about 12% of a small model's training step); here each gradient
// row is copied once. Its backward is not itself differentiable: the explicit path (double
// back-propagation) keeps split + split_heads.
#pragma once

#include <torch/torch.h>

#include <array>
#include <vector>

namespace pelab {

// One part of a packed output: `width` channels, split into `heads` heads of width / heads.
struct PackedPart {
  int64_t width;
  int64_t heads;
};

// packed [B, L, sum of the widths] (the parts in order along the last axis) -> for each part a
// [B, heads, L, width / heads] view of it: the same values as split(widths, -1) followed by
// split_heads. float32 CPU tensors only.
std::vector<torch::Tensor> split_packed_heads(const torch::Tensor& packed,
                                              const std::vector<PackedPart>& parts);

// qkv [B, L, 3 H D] (q, then k, then v) -> {q, k, v}, each [B, H, L, D].
std::array<torch::Tensor, 3> split_qkv_heads(const torch::Tensor& qkv, int64_t heads);

}  // namespace pelab
