// bf16 copies of float32 activations, made once per tensor. Under bf16 products every product
// rounds its x to bf16 first; the paper's models feed the same embeddings to every layer's k/v
// product (model.kv_source = "embedding"), and LayerNorm can write the rounding of its output in
// the pass that computes it (layer_norm.h). The twin of a tensor is kept while that tensor's
// storage lives and its values are unchanged (same data, shape, strides and version counter), so
// a later product takes it instead of converting again: the same bits as converting anew.
#pragma once

#include <torch/torch.h>

namespace pelab {

// The bf16 twin remembered for x, or an undefined tensor.
torch::Tensor find_bf16_twin(const torch::Tensor& x);

// Remembers `twin` (x's values rounded to bf16, any shape holding them in x's row-major order)
// as x's bf16 twin while x lives unchanged. Forgets twins whose tensors have died.
void remember_bf16_twin(const torch::Tensor& x, const torch::Tensor& twin);

// How many twins are remembered now (tests).
int64_t remembered_bf16_twins();

}  // namespace pelab
