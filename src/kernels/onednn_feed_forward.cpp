#include "kernels/onednn_feed_forward.h"

#include "kernels/onednn_linear.h"
#include "kernels/onednn_linear_parts.h"

namespace pelab {
using namespace linear_parts;
namespace {

// relu(x W1^T + b1) W2^T + b2 under bf16 products, forward and backward: linear_relu then
// linear to the bit, except that the hidden layer leaves the first product as bf16 and is saved
// so. No float32 hidden layer is written, read back and rounded, and the pair saves half the
// memory. The ReLU's mask is read off the bf16 values; a positive float32 under bf16's smallest
// normal (1.2e-38) rounds to 0 there, far below anything an FFN's hidden layer holds.
class Bf16FeedForwardFunction : public torch::autograd::Function<Bf16FeedForwardFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& w1, const torch::Tensor& b1,
                               const torch::Tensor& w2, const torch::Tensor& b2) {
    const auto first = bf16_hidden_layer(x, w1, b1.numel() > 0 ? b1 : torch::Tensor(), false);
    auto w2_bf16 = bf16_copy(w2);
    auto y = torch::empty({first.x.size(0), w2.size(0)}, x.options().dtype(torch::kFloat));
    onednn_matmul(first.hidden, w2_bf16.t(), b2.numel() > 0 ? b2 : torch::Tensor(), y);
    ctx->save_for_backward({first.x, first.weight, first.hidden, w2_bf16});
    ctx->saved_data["has_b1"] = b1.numel() > 0;
    ctx->saved_data["has_b2"] = b2.numel() > 0;
    return y.view(with_last(x, w2.size(0)));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x2 = saved[0], &w1_bf16 = saved[1], &hidden = saved[2], &w2_bf16 = saved[3];
    auto dy = grads[0].reshape({-1, w2_bf16.size(0)});
    if (dy.scalar_type() != torch::kFloat) dy = dy.to(torch::kFloat);
    dy = dy.contiguous();
    torch::Tensor dx, dw1, db1, dw2, db2;
    if (ctx->saved_data["has_b2"].toBool() && ctx->needs_input_grad(4))
      db2 = torch::empty({dy.size(1)}, dy.options());
    const auto dy_bf16 = bias_grad_and_bf16(dy, db2);
    if (ctx->needs_input_grad(3)) {
      dw2 = torch::empty(w2_bf16.sizes(), dy.options());
      onednn_matmul(dy_bf16.t(), hidden, {}, dw2);
    }
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(1) || ctx->needs_input_grad(2)) {
      auto dh = torch::empty(hidden.sizes(), dy.options());
      onednn_matmul(dy_bf16, w2_bf16, {}, dh);
      auto dz = torch::empty_like(dh);
      if (ctx->saved_data["has_b1"].toBool() && ctx->needs_input_grad(2))
        db1 = torch::empty({hidden.size(1)}, dy.options());
      const auto dz_bf16 = relu_backward_with_bias_grad(dh, hidden, dz, db1, true);
      if (ctx->needs_input_grad(0)) {
        dx = torch::empty({dz.size(0), w1_bf16.size(1)}, dy.options());
        onednn_matmul(dz_bf16, w1_bf16, {}, dx);
        dx = dx.view(with_last(grads[0], w1_bf16.size(1)));
      }
      if (ctx->needs_input_grad(1)) {
        dw1 = torch::empty(w1_bf16.sizes(), dy.options());
        onednn_matmul(dz_bf16.t(), x2, {}, dw1);
      }
    }
    return {dx, dw1, db1, dw2, db2};
  }
};

}  // namespace

torch::Tensor feed_forward(const torch::nn::Linear& first, const torch::nn::Linear& second,
                           const torch::Tensor& x, bool use_onednn) {
  if (bf16_products_enabled() && takes_onednn(x, first->weight, first->bias, use_onednn) &&
      takes_onednn(x, second->weight, second->bias, use_onednn))
    return Bf16FeedForwardFunction::apply(x, first->weight, bias_or_empty(first->bias),
                                          second->weight, bias_or_empty(second->bias));
  return linear(second, linear_relu(first, x, use_onednn), use_onednn);
}

torch::Tensor feed_forward_add(const torch::nn::Linear& first, const torch::nn::Linear& second,
                               const torch::Tensor& x, const torch::Tensor& residual,
                               bool use_onednn) {
  if (gradient_wanted({x, first->weight, first->bias, second->weight, second->bias, residual}))
    return residual + feed_forward(first, second, x, use_onednn);
  const auto shape = with_last(x, second->weight.size(0));
  if (!bf16_products_enabled() || !takes_onednn(x, first->weight, first->bias, use_onednn) ||
      !takes_onednn(x, second->weight, second->bias, use_onednn) || !residual_fits(residual, shape))
    return linear_add(second, linear_relu(first, x, use_onednn), residual, use_onednn);
  // The hidden layer leaves the first product as bf16, rounded as the second product's operand
  // copy would round it: the same bits without a float32 round trip through memory.
  return product_add(bf16_hidden_layer(x, first->weight, first->bias, true).hidden,
                     product_weight(second->weight, true, true), second->bias, residual, shape);
}

}  // namespace pelab
