// Multi-head latent attention's per-head queries and keys [content | rotary], where one rotary
// channel may be shared by every head (mla.h). torch::cat of the content with the expanded rotary
// part ran at about a tenth of memory speed here (strided 16-float pieces through TensorIterator:
// 7.7% of the paper preset's MLA training step, docs/PERFORMANCE.md); this is one pass that
// writes each output row front to back, and a backward that sums the shared channel's gradient
// over heads in head order.
#pragma once

#include <torch/torch.h>

namespace pelab {

// content [B, H, L, dc] (any strides, dims contiguous), rotary [B, R, L, dr] with R = 1 (one
// rotary channel for all heads) or R = H -> [B, H, L, dc + dr], contiguous: the same values as
// torch::cat({content, rotary.expand({B, H, L, dr})}, -1). Differentiable in both; its backward
// is not itself differentiable (the explicit path, double back-propagation, keeps torch::cat).
// float32 CPU tensors only.
torch::Tensor concat_head_channels(const torch::Tensor& content, const torch::Tensor& rotary);

}  // namespace pelab
