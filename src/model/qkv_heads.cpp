#include "model/qkv_heads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>

namespace pelab {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// [B, L, 3 H D] -> part (0 q, 1 k, 2 v) as [B, H, L, D], a view.
Tensor head_view(const Tensor& qkv, int64_t heads, int64_t part) {
  const auto B = qkv.size(0), L = qkv.size(1), d = qkv.size(2) / 3;
  return qkv.view({B, L, 3, heads, d / heads}).select(2, part).transpose(1, 2);
}

// The three gradients [B, H, L, D] (any strides; undefined = zeros) packed into [B, L, 3 H D]
// in one pass that writes each packed row front to back.
Tensor pack_gradients(const tensor_list& grads, at::IntArrayRef packed_sizes, int64_t heads) {
  const Tensor* any = nullptr;
  for (const auto& g : grads)
    if (g.defined()) any = &g;
  TORCH_CHECK(any, "split_qkv_heads: backward without gradients");
  Tensor packed = torch::empty(packed_sizes, any->options());
  const auto B = packed.size(0), L = packed.size(1), D = packed.size(2) / (3 * heads);
  std::array<Tensor, 3> parts;
  for (int part = 0; part < 3; ++part) {
    const Tensor& g = grads[part];
    parts[part] = !g.defined()        ? torch::zeros({B, heads, L, D}, any->options())
                  : g.stride(-1) == 1 ? g
                                      : g.contiguous();
  }
  // Raw pointers and strides up front: Tensor accessors in the inner loop cost more than the copy.
  struct Source {
    const float* data;
    int64_t batch, head, row;
  };
  std::array<Source, 3> sources;
  for (int part = 0; part < 3; ++part)
    sources[part] = {parts[part].data_ptr<float>(), parts[part].stride(0), parts[part].stride(1),
                     parts[part].stride(2)};
  float* to = packed.data_ptr<float>();
  at::parallel_for(0, B * L, 64, [&](int64_t first, int64_t last) {
    for (int64_t bl = first; bl < last; ++bl) {
      const int64_t b = bl / L, l = bl % L;
      float* row = to + bl * 3 * heads * D;
      for (const Source& source : sources) {
        const float* from = source.data + b * source.batch + l * source.row;
        for (int64_t h = 0; h < heads; ++h, row += D) std::copy_n(from + h * source.head, D, row);
      }
    }
  });
  return packed;
}

class SplitQkvHeads : public torch::autograd::Function<SplitQkvHeads> {
 public:
  static tensor_list forward(AutogradContext* ctx, const Tensor& qkv, int64_t heads) {
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["sizes"] = qkv.sizes().vec();
    return {head_view(qkv, heads, 0), head_view(qkv, heads, 1), head_view(qkv, heads, 2)};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const auto sizes = ctx->saved_data["sizes"].toIntVector();
    return {pack_gradients(grads, sizes, heads), Tensor()};
  }
};

}  // namespace

std::array<Tensor, 3> split_qkv_heads(const Tensor& qkv, int64_t heads) {
  TORCH_CHECK(qkv.dim() == 3 && qkv.size(2) % (3 * heads) == 0,
              "split_qkv_heads: expected [B, L, 3 H D] with H = ", heads, ", got ", qkv.sizes());
  TORCH_CHECK(qkv.scalar_type() == torch::kFloat && qkv.device().is_cpu(),
              "split_qkv_heads: float32 CPU tensors only");
  auto parts = SplitQkvHeads::apply(qkv, heads);
  return {parts[0], parts[1], parts[2]};
}

}  // namespace pelab
