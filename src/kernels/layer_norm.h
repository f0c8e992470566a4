// LayerNorm for models running bf16 products (train.precision = "bf16"). LibTorch 1.13's CPU
// LayerNorm (Welford moments per row) took 12% of the paper preset's bf16 evaluation, and its
// float32 output was then read again to round it to bf16 for the next product
// (docs/PERFORMANCE.md). Here it is one vectorised pass per row, forward and backward, in float32
// as the precision plan asks; where no gradient is wanted and the result only feeds products, it
// writes the bf16 operand directly.
//
// Float32 models keep LibTorch's LayerNorm: the reproduction's recorded numbers are its roundings
// (docs/REPRODUCTION.md).
#pragma once

#include <torch/torch.h>

namespace pelab {

// norm(x) over x's last dimension. Under a Bf16ProductsGuard, for float32 CPU x on a CPU with
// AVX512_BF16 and unless `explicit_path` (double back-propagation needs LibTorch's differentiable
// backward), pelab's row kernels run it, with their own backward; where no gradient is wanted
// and `feeds_products` (the result goes only into the linear layers' products), the result is
// bf16, rounded to nearest even. Elsewhere norm(x).
torch::Tensor layer_norm(const torch::nn::LayerNorm& norm, const torch::Tensor& x,
                         bool explicit_path, bool feeds_products);

}  // namespace pelab
