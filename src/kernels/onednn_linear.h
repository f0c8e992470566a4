// Linear layers through oneDNN's matmul, forward and backward: y = x W^T + b, dX = dY W,
// dW = dY^T X, db = sum dY. Debian's OpenBLAS runs its AVX2 kernels on these machines
// (OPENBLAS_CORETYPE stays set), about half of an AVX-512 CPU's rate; oneDNN picks the best
// instruction set itself (AVX-512, AMX for bf16). Weights stay torch::nn::Linear's [out, in]
// row-major parameters: oneDNN reads W^T through strides, so there is no reorder per step and
// checkpoints keep their format and names.
//
// Mixed precision (train.precision = "bf16"): under a Bf16ProductsGuard, the products take bf16
// copies of x, W and dY and write float32 results; parameters, gradients and everything outside
// the products stay float32.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace pelab {

// True when this build has oneDNN and the CPU can run it.
bool onednn_available();

// c = a b (+ bias broadcast over rows) through one oneDNN matmul, then max(c, 0) when
// `relu_after`, then + addend when it is defined. a: [M, K], b: [K, N] with any strides (a
// transposed view costs nothing); both float32 or both bf16; bias: undefined or float32 [N];
// addend: undefined or float32 contiguous [M, N] (not c); c: contiguous [M, N], overwritten,
// float32, or bf16 (rounded to nearest even) when a and b are bf16.
void onednn_matmul(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bias,
                   torch::Tensor& c, bool relu_after = false, const torch::Tensor& addend = {});

// x rounded to bf16 for a product (not differentiable): AVX512_BF16's converter where the CPU has
// one (bf16_convert.h), else .to(kBFloat16). The bf16 linear layers convert x, W and dY with it.
torch::Tensor bf16_copy(const torch::Tensor& x);

// x W^T + b, differentiable in x, weight and bias; x: [..., in], weight: [out, in], bias:
// undefined or [out]. Through oneDNN when `use_onednn` is set and the tensors are float32 on
// the CPU in a build with oneDNN; otherwise at::linear (CUDA tensors, doubles, builds without
// oneDNN).
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     bool use_onednn = true);
torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x,
                     bool use_onednn = true);
// relu(x W^T + b), the FFN's first half. Through oneDNN the ReLU runs inside the product, and
// its backward shares one pass with the bias gradient; otherwise torch::relu(at::linear(..)).
torch::Tensor linear_relu(const torch::nn::Linear& layer, const torch::Tensor& x,
                          bool use_onednn = true);

// residual + (x W^T + b), the residual stream's update in inference. Where no gradient is
// wanted (torch::NoGradGuard, or no input requires one) and the layer takes oneDNN, the residual
// is added inside the product's epilogue: the same float32 sum, one pass over [B L, d] less.
// Otherwise residual + linear(layer, x).
torch::Tensor linear_add(const torch::nn::Linear& layer, const torch::Tensor& x,
                         const torch::Tensor& residual, bool use_onednn = true);

// Whether this CPU multiplies bf16 natively (AVX512_BF16), which train.precision = "bf16" needs.
bool cpu_has_avx512_bf16();
// Why bf16 cannot run given these facts ("" when it can): the refusal Bf16ProductsGuard throws.
std::string bf16_unsupported_reason(bool cpu_has_bf16, bool have_onednn);

// While alive, the products of this thread's forward passes take bf16 operands (their backward
// too, wherever it runs): the oneDNN linear layers and, where the CPU has AVX512_BF16, the fused
// attention kernels (fused_attention.h). Throws ConfigError (naming train.precision) on a CPU
// without AVX512_BF16 or without oneDNN, with a message saying so.
class Bf16ProductsGuard {
 public:
  explicit Bf16ProductsGuard(bool enabled = true);
  ~Bf16ProductsGuard();
  Bf16ProductsGuard(const Bf16ProductsGuard&) = delete;
  Bf16ProductsGuard& operator=(const Bf16ProductsGuard&) = delete;

 private:
  bool previous_;
};
// Whether a Bf16ProductsGuard is alive on this thread.
bool bf16_products_enabled();

// torch::cat(parts) along the first dimension; where no gradient is wanted under a
// PackedWeightsScope, made once for the scope (the parts' addresses name it), so that the
// products can take it prepared like any weight.
torch::Tensor concatenated_weights(const std::vector<torch::Tensor>& parts);

// While alive, this thread's products without a gradient (evaluation) take each weight prepared
// once for the scope, not once per batch: its bf16 copy (under bf16 products) and its copy in the
// blocked layout oneDNN's kernels read are made on the first batch and reused by the rest. The
// results are the same bits. The weights must not change while it is alive (the caller's promise:
// evaluation passes open one); a scope inside another shares the outer one's copies.
//
// Weights a product takes concatenated (q, k and v's in one product) should come from
// concatenated_weights, which makes the concatenation once per scope; a tensor made anew for
// each batch is not prepared, only read as it is.
class PackedWeightsScope {
 public:
  PackedWeightsScope();
  ~PackedWeightsScope();
  PackedWeightsScope(const PackedWeightsScope&) = delete;
  PackedWeightsScope& operator=(const PackedWeightsScope&) = delete;

 private:
  bool outermost_;
};

}  // namespace pelab
