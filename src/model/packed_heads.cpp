#include "model/packed_heads.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace pelab {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// The part at channels [offset, offset + width) of packed [B, L, T] as [B, heads, L, width /
// heads], a view.
Tensor packed_head_view(const Tensor& packed, int64_t offset, const PackedPart& part) {
  const auto B = packed.size(0), L = packed.size(1);
  return packed.narrow(-1, offset, part.width)
      .view({B, L, part.heads, part.width / part.heads})
      .transpose(1, 2);
}

// The parts' gradients [B, heads, L, D] (any strides; undefined = zeros) packed into
// [B, L, T] in one pass that writes each packed row front to back.
Tensor pack_gradients(const tensor_list& grads, const std::vector<PackedPart>& parts,
                      at::IntArrayRef packed_sizes, const torch::TensorOptions& options) {
  Tensor packed = torch::empty(packed_sizes, options);
  const auto B = packed.size(0), L = packed.size(1), T = packed.size(2);
  // Raw pointers and strides up front: Tensor accessors in the inner loop cost more than the copy.
  struct Source {
    const float* data;  // null: this part has no gradient (zeros)
    int64_t batch, head, row, heads, dims;
  };
  std::vector<Tensor> kept;  // gradients made contiguous along their dims stay alive here
  std::vector<Source> sources;
  for (size_t i = 0; i < parts.size(); ++i) {
    const int64_t dims = parts[i].width / parts[i].heads;
    if (!grads[i].defined()) {
      sources.push_back({nullptr, 0, 0, 0, parts[i].heads, dims});
      continue;
    }
    kept.push_back(grads[i].stride(-1) == 1 ? grads[i] : grads[i].contiguous());
    const Tensor& g = kept.back();
    sources.push_back(
        {g.data_ptr<float>(), g.stride(0), g.stride(1), g.stride(2), parts[i].heads, dims});
  }
  float* to = packed.data_ptr<float>();
  at::parallel_for(0, B * L, 64, [&](int64_t first, int64_t last) {
    for (int64_t bl = first; bl < last; ++bl) {
      const int64_t b = bl / L, l = bl % L;
      float* row = to + bl * T;
      for (const Source& source : sources) {
        if (!source.data) {
          row = std::fill_n(row, source.heads * source.dims, 0.0f);
          continue;
        }
        const float* from = source.data + b * source.batch + l * source.row;
        for (int64_t h = 0; h < source.heads; ++h)
          row = std::copy_n(from + h * source.head, source.dims, row);
      }
    }
  });
  return packed;
}

class SplitPackedHeads : public torch::autograd::Function<SplitPackedHeads> {
 public:
  static tensor_list forward(AutogradContext* ctx, const Tensor& packed,
                             const std::vector<int64_t>& widths_and_heads) {
    ctx->saved_data["widths_and_heads"] = widths_and_heads;
    ctx->saved_data["sizes"] = packed.sizes().vec();
    tensor_list views;
    int64_t offset = 0;
    for (const PackedPart& part : unflatten(widths_and_heads)) {
      views.push_back(packed_head_view(packed, offset, part));
      offset += part.width;
    }
    return views;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto parts = unflatten(ctx->saved_data["widths_and_heads"].toIntVector());
    const auto sizes = ctx->saved_data["sizes"].toIntVector();
    const Tensor* any = nullptr;
    for (const auto& g : grads)
      if (g.defined()) any = &g;
    TORCH_CHECK(any, "split_packed_heads: backward without gradients");
    return {pack_gradients(grads, parts, sizes, any->options()), Tensor()};
  }

  // Autograd's saved data holds integer lists, not structs: (width, heads) pairs flattened.
  static std::vector<int64_t> flatten(const std::vector<PackedPart>& parts) {
    std::vector<int64_t> flat;
    for (const PackedPart& part : parts) {
      flat.push_back(part.width);
      flat.push_back(part.heads);
    }
    return flat;
  }
  static std::vector<PackedPart> unflatten(const std::vector<int64_t>& flat) {
    std::vector<PackedPart> parts;
    for (size_t i = 0; i + 1 < flat.size(); i += 2) parts.push_back({flat[i], flat[i + 1]});
    return parts;
  }
};

}  // namespace

std::vector<Tensor> split_packed_heads(const Tensor& packed, const std::vector<PackedPart>& parts) {
  int64_t total = 0;
  for (const PackedPart& part : parts) {
    TORCH_CHECK(part.heads > 0 && part.width > 0 && part.width % part.heads == 0,
                "split_packed_heads: a part of width ", part.width, " does not split into ",
                part.heads, " heads");
    total += part.width;
  }
  TORCH_CHECK(packed.dim() == 3 && packed.size(2) == total, "split_packed_heads: expected [B, L, ",
              total, "] (the parts' widths summed), got ", packed.sizes());
  TORCH_CHECK(packed.scalar_type() == torch::kFloat && packed.device().is_cpu(),
              "split_packed_heads: float32 CPU tensors only");
  TORCH_CHECK(packed.is_contiguous(), "split_packed_heads: the packed tensor must be contiguous");
  return SplitPackedHeads::apply(packed, SplitPackedHeads::flatten(parts));
}

std::array<Tensor, 3> split_qkv_heads(const Tensor& qkv, int64_t heads) {
  TORCH_CHECK(qkv.dim() == 3 && qkv.size(2) % (3 * heads) == 0,
              "split_qkv_heads: expected [B, L, 3 H D] with H = ", heads, ", got ", qkv.sizes());
  const int64_t d = qkv.size(2) / 3;
  const auto parts = split_packed_heads(qkv, {{d, heads}, {d, heads}, {d, heads}});
  return {parts[0], parts[1], parts[2]};
}

}  // namespace pelab
