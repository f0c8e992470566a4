// RoPE primitives (rotary.h). Pair t = dims (2t, 2t+1), angle a = position * theta_t:
//   x'_{2t} = x_{2t} cos a - x_{2t+1} sin a,   x'_{2t+1} = x_{2t} sin a + x_{2t+1} cos a,
// theta_t = base^(-2t / rotary_dims). An optional magnitude m_t(position) multiplies both
// lines (x' = m R(a) x). Angles, cos and sin are computed in float64 and only then
// cast to x's dtype; everything is out of place, so autograd flows through x.
#include "pe/rotary.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace pelab {

namespace {

// One row of pairs: b = R(a) x with cos_row[2t] = cos_row[2t+1] = cos a_t and sin_row[2t] =
// -sin a_t, sin_row[2t+1] = sin a_t, so that b_j = x_j cos_row_j + x_(j^1) sin_row_j. Bit for bit
// the formulas above: x0 c + x1 (-s) is x0 c - x1 s, and x1 c + x0 s is x0 s + x1 c, each product
// rounded once and no FMA (the baseline instruction set of this file has none).
inline void rotate_row(const float* x, float* b, const float* cos_row, const float* sin_row,
                       int64_t dims) {
  int64_t j = 0;
#if defined(__SSE2__)
  for (; j + 4 <= dims; j += 4) {
    const __m128 v = _mm_loadu_ps(x + j);
    const __m128 swapped = _mm_shuffle_ps(v, v, _MM_SHUFFLE(2, 3, 0, 1));
    _mm_storeu_ps(b + j, _mm_add_ps(_mm_mul_ps(v, _mm_loadu_ps(cos_row + j)),
                                    _mm_mul_ps(swapped, _mm_loadu_ps(sin_row + j))));
  }
#endif
  for (; j < dims; ++j) b[j] = x[j] * cos_row[j] + x[j ^ 1] * sin_row[j];
}

// y = R(a) x on the pairs of x's last dim; cos and sin are [L, pairs], broadcast over the rest.
// Differentiable (tensor ops): the path for double back-propagation and for other dtypes.
torch::Tensor rotate_pairs_ops(const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin) {
  auto shape = x.sizes().vec();
  shape.back() = cos.size(1);
  shape.push_back(2);
  auto pair_view = x.reshape(shape);  // [..., L, pairs, 2]
  auto x0 = pair_view.select(-1, 0), x1 = pair_view.select(-1, 1);
  return torch::stack({x0 * cos - x1 * sin, x0 * sin + x1 * cos}, -1).flatten(-2);
}

// The same rotation as one pass over float32 CPU memory (not differentiable): the eight
// broadcasting, strided elementwise ops above cost more than a small model's attention. A 4-D
// [B, H, L, D] view with unit last stride (the q and k heads of the packed q/k/v product) is
// read through its strides, not copied first; the result keeps x's layout where x is dense (a
// [B, L, H, D] buffer seen as [B, H, L, D] stays one, so the heads' view needs no copy in
// backward), else it is contiguous.
torch::Tensor rotate_pairs(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin) {
  if (x.scalar_type() != torch::kFloat || !x.device().is_cpu() ||
      cos.scalar_type() != torch::kFloat)
    return rotate_pairs_ops(x, cos, sin);
  const auto c = cos.contiguous(), s = sin.contiguous();
  const int64_t positions = c.size(0), pairs = c.size(1);
  const bool head_view = x.dim() == 4 && x.stride(3) == 1 && x.size(2) == positions;
  const auto input = head_view ? x : x.contiguous();
  auto y = torch::empty_like(input, torch::MemoryFormat::Preserve);
  const int64_t rows = input.numel() / (2 * pairs);  // row r holds position r % positions
  // Row (b, h, l) of a head view through its strides; rows of a contiguous input in order.
  const int64_t heads = head_view ? input.size(1) : 1;
  const int64_t batch_stride = head_view ? input.stride(0) : 0;
  const int64_t head_stride = head_view ? input.stride(1) : 0;
  const int64_t position_stride = head_view ? input.stride(2) : 0;
  // The same for y (equal to x's strides, or contiguous).
  const int64_t out_batch_stride = head_view ? y.stride(0) : 0;
  const int64_t out_head_stride = head_view ? y.stride(1) : 0;
  const int64_t out_position_stride = head_view ? y.stride(2) : 0;
  const auto [cos_table, sin_table] = interleaved_rotary_rows(c, s);
  const float* in = input.data_ptr<float>();
  const float* cos_rows = cos_table.data_ptr<float>();
  const float* sin_rows = sin_table.data_ptr<float>();
  float* out = y.data_ptr<float>();
  at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
    // Row r is (b, h, l) = (r / (H L), r / L % H, r % L): divided once, then counted up.
    int64_t position = begin % positions, h = begin / positions % heads,
            b = begin / positions / heads;
    for (int64_t r = begin; r < end; ++r) {
      const float* a = head_view
                           ? in + b * batch_stride + h * head_stride + position * position_stride
                           : in + r * 2 * pairs;
      float* o = head_view ? out + b * out_batch_stride + h * out_head_stride +
                                 position * out_position_stride
                           : out + r * 2 * pairs;
      rotate_row(a, o, cos_rows + position * 2 * pairs, sin_rows + position * 2 * pairs, 2 * pairs);
      if (++position == positions) {
        position = 0;
        if (++h == heads) h = 0, ++b;
      }
    }
  });
  return y;
}

// The rotation as one autograd node. Its backward is the transposed rotation, R^T dy =
// rotate_pairs(dy, cos, -sin): one pass, where autograd through select and stack would zero-fill
// a full-size gradient per select and add them up (a fifth of a small model's training step).
// Built of differentiable ops, so double back-propagation (Hessian products) still works.
struct RotatePairs : torch::autograd::Function<RotatePairs> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return rotate_pairs(x, cos, sin);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    // Under create_graph (Hessian products) the backward itself must be differentiable.
    const auto rotate = grads[0].requires_grad() ? rotate_pairs_ops : rotate_pairs;
    return {rotate(grads[0], saved[0], -saved[1]), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor rope_frequencies(int64_t rotary_dims, double base) {
  TORCH_CHECK(rotary_dims >= 0 && rotary_dims % 2 == 0, "rope_frequencies: rotary_dims ",
              rotary_dims, " must be even and non-negative");
  TORCH_CHECK(base > 0, "rope_frequencies: base must be positive, got ", base);
  auto t = torch::arange(rotary_dims / 2, torch::kDouble);
  return torch::pow(base, -2.0 * t / double(rotary_dims));
}

std::pair<torch::Tensor, torch::Tensor> rotary_cos_sin(const torch::Tensor& positions,
                                                       const torch::Tensor& theta,
                                                       const torch::Tensor& magnitude,
                                                       torch::ScalarType dtype) {
  auto angles = positions.to(torch::kDouble).unsqueeze(1) *
                theta.to(torch::kDouble).unsqueeze(0);  // [L, pairs]
  auto cos = angles.cos(), sin = angles.sin();
  if (magnitude.defined()) {
    TORCH_CHECK(magnitude.sizes() == angles.sizes(), "apply_rotary: magnitude must be ",
                angles.sizes(), ", got ", magnitude.sizes());
    cos = cos * magnitude;
    sin = sin * magnitude;
  }
  return {cos.to(dtype), sin.to(dtype)};
}

std::pair<torch::Tensor, torch::Tensor> interleaved_rotary_rows(const torch::Tensor& cos,
                                                                const torch::Tensor& sin) {
  TORCH_CHECK(cos.dim() == 2 && cos.sizes() == sin.sizes() && cos.scalar_type() == torch::kFloat &&
                  sin.scalar_type() == torch::kFloat,
              "interleaved_rotary_rows: expected float32 cos and sin [L, pairs], got ", cos.sizes(),
              " and ", sin.sizes());
  const auto c = cos.contiguous().cpu(), s = sin.contiguous().cpu();
  const int64_t positions = c.size(0), pairs = c.size(1);
  auto cos_rows = torch::empty({positions, 2 * pairs}, c.options());
  auto sin_rows = torch::empty({positions, 2 * pairs}, c.options());
  const float* cp = c.data_ptr<float>();
  const float* sp = s.data_ptr<float>();
  float* co = cos_rows.data_ptr<float>();
  float* so = sin_rows.data_ptr<float>();
  for (int64_t i = 0; i < positions * pairs; ++i) {
    co[2 * i] = co[2 * i + 1] = cp[i];
    so[2 * i] = -sp[i];
    so[2 * i + 1] = sp[i];
  }
  return {cos_rows, sin_rows};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& positions,
                           const torch::Tensor& theta, const torch::Tensor& magnitude) {
  const int64_t pairs = theta.size(0);
  if (pairs == 0) return x;
  const int64_t rotary = 2 * pairs;
  const int64_t dims = x.size(-1);
  TORCH_CHECK(rotary <= dims, "apply_rotary: ", rotary, " rotary dims but the head has ", dims);
  TORCH_CHECK(x.dim() >= 2 && positions.dim() == 1 && positions.size(0) == x.size(-2),
              "apply_rotary: expected positions [", x.size(-2), "], got ", positions.sizes());
  const auto [cos, sin] = rotary_cos_sin(positions, theta, magnitude, x.scalar_type());
  // All dims rotated: x itself, for a narrow's backward would zero-fill a full-size gradient.
  const auto rotated = rotary == dims ? x : x.narrow(-1, 0, rotary);
  const auto cos_on = cos.to(x.device()), sin_on = sin.to(x.device());
  auto y = cos.requires_grad() || sin.requires_grad() ? rotate_pairs_ops(rotated, cos_on, sin_on)
                                                      : RotatePairs::apply(rotated, cos_on, sin_on);
  if (rotary == dims) return y;
  return torch::cat({y, x.narrow(-1, rotary, dims - rotary)}, -1);
}

}  // namespace pelab
