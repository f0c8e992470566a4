#include "model/head_channels.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace pelab {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Rows per parallel task: a row is 32-64 floats, so a task of fewer rows costs more to hand out
// than to copy.
constexpr int64_t kHeadRowsPerTask = 256;

// A [B, R, L, D] operand's data and strides (elements); R = 1 reads head 0 for every head.
struct HeadRows {
  float* data;
  int64_t batch, head, row;
  HeadRows(const Tensor& t, bool shared)
      : data(t.data_ptr<float>()),
        batch(t.stride(0)),
        head(shared ? 0 : t.stride(1)),
        row(t.stride(2)) {}
  float* at(int64_t b, int64_t h, int64_t l) const { return data + b * batch + h * head + l * row; }
};

Tensor concatenate_heads(const Tensor& content, const Tensor& rotary) {
  const auto B = content.size(0), H = content.size(1), L = content.size(2);
  const auto dc = content.size(3), dr = rotary.size(3);
  Tensor out = torch::empty({B, H, L, dc + dr}, content.options());
  const HeadRows from_content(content, false), from_rotary(rotary, rotary.size(1) == 1);
  float* to = out.data_ptr<float>();
  at::parallel_for(0, B * H * L, kHeadRowsPerTask, [&](int64_t first, int64_t last) {
    for (int64_t bhl = first; bhl < last; ++bhl) {
      const int64_t b = bhl / (H * L), h = bhl / L % H, l = bhl % L;
      float* row = to + bhl * (dc + dr);
      std::copy_n(from_content.at(b, h, l), dc, row);
      std::copy_n(from_rotary.at(b, h, l), dr, row + dc);
    }
  });
  return out;
}

// grad [B, H, L, dc + dr] -> the shared rotary channel's gradient [B, 1, L, dr]: the sum over
// heads, in head order for every element (the same order whatever the thread count).
Tensor sum_rotary_over_heads(const Tensor& grad, int64_t dc) {
  const auto B = grad.size(0), H = grad.size(1), L = grad.size(2), dr = grad.size(3) - dc;
  Tensor summed = torch::empty({B, 1, L, dr}, grad.options());
  const HeadRows from(grad, false);
  float* to = summed.data_ptr<float>();
  at::parallel_for(0, B * L, kHeadRowsPerTask / 4, [&](int64_t first, int64_t last) {
    for (int64_t bl = first; bl < last; ++bl) {
      const int64_t b = bl / L, l = bl % L;
      float* row = to + bl * dr;
      std::copy_n(from.at(b, 0, l) + dc, dr, row);
      for (int64_t h = 1; h < H; ++h) {
        const float* add = from.at(b, h, l) + dc;
        for (int64_t d = 0; d < dr; ++d) row[d] += add[d];
      }
    }
  });
  return summed;
}

class ConcatHeadChannels : public torch::autograd::Function<ConcatHeadChannels> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& content, const Tensor& rotary) {
    ctx->saved_data["content_dims"] = content.size(3);
    ctx->saved_data["shared"] = rotary.size(1) == 1 && content.size(1) != 1;
    return concatenate_heads(content, rotary);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const int64_t dc = ctx->saved_data["content_dims"].toInt();
    const Tensor grad = grads[0].stride(-1) == 1 ? grads[0] : grads[0].contiguous();
    const Tensor grad_rotary = ctx->saved_data["shared"].toBool()
                                   ? sum_rotary_over_heads(grad, dc)
                                   : grad.narrow(-1, dc, grad.size(3) - dc);
    return {grad.narrow(-1, 0, dc), grad_rotary};
  }
};

}  // namespace

Tensor concat_head_channels(const Tensor& content, const Tensor& rotary) {
  TORCH_CHECK(content.dim() == 4 && rotary.dim() == 4 && content.size(0) == rotary.size(0) &&
                  content.size(2) == rotary.size(2) &&
                  (rotary.size(1) == 1 || rotary.size(1) == content.size(1)),
              "concat_head_channels: expected content [B, H, L, dc] and rotary [B, 1 or H, L, dr], "
              "got ",
              content.sizes(), " and ", rotary.sizes());
  for (const Tensor* t : {&content, &rotary})
    TORCH_CHECK(t->scalar_type() == torch::kFloat && t->device().is_cpu() && t->stride(3) == 1,
                "concat_head_channels: float32 CPU tensors with contiguous channels only");
  return ConcatHeadChannels::apply(content, rotary);
}

}  // namespace pelab
