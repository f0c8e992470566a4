#include "kernels/onednn_linear.h"

#include <ATen/record_function.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "config/config.h"
#include "kernels/bf16_convert.h"
#include "kernels/onednn_linear_parts.h"

#ifdef PELAB_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace pelab {
using namespace linear_parts;
namespace {

thread_local bool bf16_linear = false;

#ifdef PELAB_HAVE_ONEDNN

// A 2-D operand as oneDNN sees it: sizes and strides of a row- or column-major view. Anything
// else (or an unusual stride of a size-1 dimension) is copied to row-major first.
struct Operand {
  torch::Tensor tensor;
  dnnl::memory::dims dims, strides;
};

Operand operand(const torch::Tensor& t) {
  const int64_t rows = t.size(0), cols = t.size(1);
  if ((cols == 1 || t.stride(1) == 1) && (rows == 1 || t.stride(0) >= cols))
    return {t, {rows, cols}, {rows == 1 ? cols : t.stride(0), 1}};
  if ((rows == 1 || t.stride(0) == 1) && (cols == 1 || t.stride(1) >= rows))
    return {t, {rows, cols}, {1, cols == 1 ? rows : t.stride(1)}};
  auto c = t.contiguous();
  return {c, {rows, cols}, {cols, 1}};
}

dnnl::memory::data_type data_type(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 ? dnnl::memory::data_type::bf16
                                             : dnnl::memory::data_type::f32;
}

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Primitive creation JIT-compiles a kernel (about a millisecond); a training step reuses a few
// dozen shapes, so each is built once.
using PrimitiveKey = std::tuple<dnnl::memory::dims, dnnl::memory::dims, dnnl::memory::dims,
                                dnnl::memory::dims, int, int, int, bool, bool>;

dnnl::matmul matmul_primitive(const Operand& a, const Operand& b, dnnl::memory::data_type type,
                              dnnl::memory::data_type result_type, bool with_bias, bool relu_after,
                              bool with_addend) {
  static std::mutex mutex;
  static std::map<PrimitiveKey, dnnl::matmul> cache;
  const PrimitiveKey key{a.dims,           a.strides,       b.dims,    b.strides,  int(type),
                         int(result_type), int(relu_after), with_bias, with_addend};
  std::lock_guard<std::mutex> lock(mutex);
  auto found = cache.find(key);
  if (found != cache.end()) return found->second;
  using dt = dnnl::memory::data_type;
  const auto M = a.dims[0], N = b.dims[1];
  dnnl::memory::desc a_md(a.dims, type, a.strides), b_md(b.dims, type, b.strides);
  dnnl::memory::desc c_md({M, N}, result_type, dnnl::memory::dims{N, 1});
  dnnl::memory::desc bias_md = with_bias
                                   ? dnnl::memory::desc({1, N}, dt::f32, dnnl::memory::dims{N, 1})
                                   : dnnl::memory::desc();
  dnnl::matmul::desc desc(a_md, b_md, bias_md, c_md);
  // ReLU and the addend as the product's epilogue: applied to each block of c while it is still
  // in cache, instead of separate passes over the whole result.
  dnnl::primitive_attr attr;
  dnnl::post_ops epilogue;
  if (relu_after) epilogue.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  if (with_addend)
    epilogue.append_binary(dnnl::algorithm::binary_add,
                           dnnl::memory::desc({M, N}, dt::f32, dnnl::memory::dims{N, 1}));
  attr.set_post_ops(epilogue);
  dnnl::matmul primitive(dnnl::matmul::primitive_desc(desc, attr, cpu_engine()));
  cache.emplace(key, primitive);
  return primitive;
}

#endif  // PELAB_HAVE_ONEDNN

void* data(const torch::Tensor& t) { return const_cast<void*>(t.data_ptr()); }

// Whether y is positive: float32, or bf16 (its bits are a float32's upper half).
inline bool positive(float y) { return y > 0.0f; }
inline bool positive(uint16_t y_bits) {
  float y;
  const uint32_t bits = uint32_t(y_bits) << 16;
  std::memcpy(&y, &bits, sizeof y);
  return y > 0.0f;
}

// ReLU's backward and the bias gradient in one pass: dz = dy where y > 0 (y = relu(z) is
// positive exactly where z is; y float32 or bf16), db = the column sums of dz, and, when
// dz_bf16 is defined, dz rounded to bf16 for the products (each row while it is in cache). Each
// fixed chunk of rows sums into its own partial, and the partials are added in chunk order, so
// the numbers do not depend on the thread count.
template <typename Y>
void relu_backward_rows(const torch::Tensor& dy, const Y* __restrict out, int64_t rows,
                        int64_t cols, torch::Tensor& dz, torch::Tensor& db,
                        const torch::Tensor& dz_bf16) {
  constexpr int64_t kRowsPerChunk = 256;
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  const float* __restrict g = dy.data_ptr<float>();
  float* __restrict d = dz.data_ptr<float>();
  auto* rounded = dz_bf16.defined() ? reinterpret_cast<uint16_t*>(data(dz_bf16)) : nullptr;
  const bool bias_grad = db.defined();
  std::vector<float> partial(bias_grad ? chunks * cols : 0, 0.0f);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t last = std::min(rows, (chunk + 1) * kRowsPerChunk);
      for (int64_t i = chunk * kRowsPerChunk; i < last; ++i) {
        const float* __restrict g_row = g + i * cols;
        const Y* __restrict y_row = out + i * cols;
        float* __restrict d_row = d + i * cols;
        for (int64_t j = 0; j < cols; ++j) {
          const float gradient = g_row[j];  // loaded unconditionally, so the loop vectorises
          d_row[j] = positive(y_row[j]) ? gradient : 0.0f;
        }
        if (rounded) kernels::convert_to_bf16(d_row, rounded + i * cols, cols);
        if (!bias_grad) continue;
        float* __restrict sums = partial.data() + chunk * cols;
        for (int64_t j = 0; j < cols; ++j) sums[j] += d_row[j];
      }
    }
  });
  if (!bias_grad) return;
  float* __restrict total = db.data_ptr<float>();
  std::fill(total, total + cols, 0.0f);
  for (int64_t chunk = 0; chunk < chunks; ++chunk)
    for (int64_t j = 0; j < cols; ++j) total[j] += partial[chunk * cols + j];
}

// y = x W^T + b (then ReLU when `relu`) through oneDNN; backward through the same matmul. Under
// bf16 the saved x and W are bf16 copies (half the memory of float32 ones) and dY is rounded to
// bf16 for the products.
class OneDnnLinearFunction : public torch::autograd::Function<OneDnnLinearFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, bool bf16,
                               bool relu) {
    const auto out = weight.size(0);
    auto [x2, w] = product_operands(x, weight, bf16);
    auto y = torch::empty({x2.size(0), out}, x.options().dtype(torch::kFloat));
    const bool has_bias = bias.numel() > 0;
    onednn_matmul(x2, w.t(), has_bias ? bias : torch::Tensor(), y, relu);
    if (relu)
      ctx->save_for_backward({x2, w, y});
    else
      ctx->save_for_backward({x2, w});
    ctx->saved_data["bf16"] = bf16;
    ctx->saved_data["has_bias"] = has_bias;
    ctx->saved_data["relu"] = relu;
    auto shape = x.sizes().vec();
    shape.back() = out;
    return y.view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x2 = saved[0];
    const auto& w = saved[1];
    const bool bf16 = ctx->saved_data["bf16"].toBool();
    const bool relu = ctx->saved_data["relu"].toBool();
    const bool bias_grad = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2);
    const auto out = w.size(0), in = w.size(1);
    auto dy = grads[0].reshape({-1, out});
    if (dy.scalar_type() != torch::kFloat) dy = dy.to(torch::kFloat);
    torch::Tensor dx, dw, db, dy_product;
    if (relu) {  // from here on dy is the gradient before the ReLU
      auto dz = torch::empty_like(dy, torch::MemoryFormat::Contiguous);
      if (bias_grad) db = torch::empty({out}, dy.options());
      dy_product = relu_backward_with_bias_grad(dy.contiguous(), saved[2], dz, db, bf16);
      dy = dz;
      if (!bf16) dy_product = dy;
    } else {
      if (bias_grad) db = dy.sum(0);
      dy_product = bf16 ? bf16_copy(dy) : dy;
    }
    if (ctx->needs_input_grad(0)) {
      dx = torch::empty({dy.size(0), in}, dy.options());
      onednn_matmul(dy_product, w, {}, dx);
      auto shape = grads[0].sizes().vec();
      shape.back() = in;
      dx = dx.view(shape);
    }
    if (ctx->needs_input_grad(1)) {
      dw = torch::empty({out, in}, dy.options());
      onednn_matmul(dy_product.t(), x2, {}, dw);
    }
    return {dx, dw, db, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

namespace linear_parts {

torch::Tensor relu_backward_with_bias_grad(const torch::Tensor& dy, const torch::Tensor& y,
                                           torch::Tensor& dz, torch::Tensor& db, bool round) {
  // Rounded in the same pass where the CPU has the converter; otherwise after it.
  const bool round_in_pass = round && kernels::bf16_converter_available();
  torch::Tensor dz_bf16;
  if (round_in_pass) dz_bf16 = torch::empty(dz.sizes(), dz.options().dtype(torch::kBFloat16));
  if (y.scalar_type() == torch::kBFloat16)
    relu_backward_rows(dy, reinterpret_cast<const uint16_t*>(data(y)), y.size(0), y.size(1), dz, db,
                       dz_bf16);
  else
    relu_backward_rows(dy, y.data_ptr<float>(), y.size(0), y.size(1), dz, db, dz_bf16);
  if (round && !round_in_pass) dz_bf16 = bf16_copy(dz);
  return dz_bf16;
}

std::vector<int64_t> with_last(const torch::Tensor& x, int64_t last) {
  auto shape = x.sizes().vec();
  shape.back() = last;
  return shape;
}

std::pair<torch::Tensor, torch::Tensor> product_operands(const torch::Tensor& x,
                                                         const torch::Tensor& weight, bool bf16) {
  const auto rows = x.reshape({-1, weight.size(1)});
  if (!bf16) return {rows, weight};
  return {bf16_copy(rows), bf16_copy(weight)};
}

Bf16HiddenLayer bf16_hidden_layer(const torch::Tensor& x, const torch::Tensor& weight,
                                  const torch::Tensor& bias) {
  auto [x2, w] = product_operands(x, weight, true);
  auto hidden = torch::empty({x2.size(0), w.size(0)}, x.options().dtype(torch::kBFloat16));
  onednn_matmul(x2, w.t(), bias, hidden, true);
  return {x2, w, hidden};
}

bool takes_onednn(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                  bool use_onednn) {
  return use_onednn && onednn_available() && x.device().is_cpu() && weight.device().is_cpu() &&
         x.scalar_type() == torch::kFloat && weight.scalar_type() == torch::kFloat &&
         (!bias.defined() || bias.scalar_type() == torch::kFloat);
}

torch::Tensor bias_or_empty(const torch::Tensor& bias) {
  return bias.defined() ? bias : torch::empty({0});
}

bool gradient_wanted(std::initializer_list<torch::Tensor> inputs) {
  if (!torch::GradMode::is_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

torch::Tensor product_add(const torch::Tensor& x2, const torch::Tensor& w,
                          const torch::Tensor& bias, const torch::Tensor& residual,
                          const std::vector<int64_t>& shape) {
  auto y = torch::empty({x2.size(0), w.size(0)}, residual.options());
  onednn_matmul(x2, w.t(), bias, y, false, residual.reshape({-1, w.size(0)}).contiguous());
  return y.view(shape);
}

bool residual_fits(const torch::Tensor& residual, const std::vector<int64_t>& shape) {
  return residual.scalar_type() == torch::kFloat && residual.device().is_cpu() &&
         residual.sizes() == torch::IntArrayRef(shape);
}

}  // namespace linear_parts

// Fixed-size pieces over the threads; each value is converted alone, so any split gives the same.
torch::Tensor bf16_copy(const torch::Tensor& x) {
  if (!kernels::bf16_converter_available() || x.scalar_type() != torch::kFloat)
    return x.to(torch::kBFloat16);
  const auto in = x.contiguous();
  auto out = torch::empty(in.sizes(), in.options().dtype(torch::kBFloat16));
  const float* source = in.data_ptr<float>();
  auto* target = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  at::parallel_for(0, in.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    kernels::convert_to_bf16(source + begin, target + begin, end - begin);
  });
  return out;
}

bool onednn_available() {
#ifdef PELAB_HAVE_ONEDNN
  return true;
#else
  return false;
#endif
}

void onednn_matmul(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bias,
                   torch::Tensor& c, bool relu_after, const torch::Tensor& addend) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "onednn_matmul: shapes ",
              a.sizes(), " and ", b.sizes(), " do not multiply");
  TORCH_CHECK(a.scalar_type() == b.scalar_type() &&
                  (a.scalar_type() == torch::kFloat || a.scalar_type() == torch::kBFloat16),
              "onednn_matmul: operands must both be float32 or both bf16");
  TORCH_CHECK((c.scalar_type() == torch::kFloat ||
               (c.scalar_type() == torch::kBFloat16 && a.scalar_type() == torch::kBFloat16)) &&
                  c.is_contiguous() && c.sizes() == torch::IntArrayRef({a.size(0), b.size(1)}),
              "onednn_matmul: the result must be a contiguous [M, N] tensor, float32 (or bf16 "
              "for bf16 operands)");
  TORCH_CHECK(!bias.defined() || (bias.scalar_type() == torch::kFloat && bias.numel() == c.size(1)),
              "onednn_matmul: the bias must be float32 [N]");
  TORCH_CHECK(!addend.defined() || (addend.scalar_type() == torch::kFloat &&
                                    addend.is_contiguous() && addend.sizes() == c.sizes()),
              "onednn_matmul: the addend must be a contiguous float32 [M, N] tensor");
#ifdef PELAB_HAVE_ONEDNN
  RECORD_FUNCTION("pelab::onednn_matmul", std::vector<c10::IValue>());  // named in --profile
  if (c.numel() == 0) return;
  if (a.size(1) == 0) {  // an empty sum
    if (bias.defined())
      c.copy_(bias.expand_as(c));
    else
      c.zero_();
    if (relu_after) c.clamp_min_(0);
    if (addend.defined()) c.add_(addend);
    return;
  }
  const auto result_type = data_type(c);
  const Operand oa = operand(a), ob = operand(b);
  const auto type = data_type(a);
  const auto bias_contiguous = bias.defined() ? bias.contiguous() : bias;
  auto primitive =
      matmul_primitive(oa, ob, type, result_type, bias.defined(), relu_after, addend.defined());
  const auto M = oa.dims[0], N = ob.dims[1];
  using dt = dnnl::memory::data_type;
  auto& engine = cpu_engine();
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, dnnl::memory({oa.dims, type, oa.strides}, engine, data(oa.tensor))},
      {DNNL_ARG_WEIGHTS, dnnl::memory({ob.dims, type, ob.strides}, engine, data(ob.tensor))},
      {DNNL_ARG_DST, dnnl::memory({{M, N}, result_type, {N, 1}}, engine, data(c))}};
  if (bias.defined())
    args.emplace(DNNL_ARG_BIAS,
                 dnnl::memory({{1, N}, dt::f32, {N, 1}}, engine, data(bias_contiguous)));
  if (addend.defined()) {
    const int addend_index = relu_after ? 1 : 0;  // its place among the post-ops
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(addend_index) | DNNL_ARG_SRC_1,
                 dnnl::memory({{M, N}, dt::f32, {N, 1}}, engine, data(addend)));
  }
  dnnl::stream stream(engine);
  primitive.execute(stream, args);
  stream.wait();
#else
  TORCH_CHECK(false, "onednn_matmul: this build has no oneDNN");
#endif
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     bool use_onednn) {
  if (!takes_onednn(x, weight, bias, use_onednn))
    return torch::nn::functional::linear(x, weight, bias);
  return OneDnnLinearFunction::apply(x, weight, bias_or_empty(bias), bf16_linear, false);
}

torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x, bool use_onednn) {
  return linear(x, layer->weight, layer->bias, use_onednn);
}

torch::Tensor linear_relu(const torch::nn::Linear& layer, const torch::Tensor& x, bool use_onednn) {
  if (!takes_onednn(x, layer->weight, layer->bias, use_onednn))
    return torch::relu(torch::nn::functional::linear(x, layer->weight, layer->bias));
  return OneDnnLinearFunction::apply(x, layer->weight, bias_or_empty(layer->bias), bf16_linear,
                                     true);
}

torch::Tensor linear_add(const torch::nn::Linear& layer, const torch::Tensor& x,
                         const torch::Tensor& residual, bool use_onednn) {
  const auto& weight = layer->weight;
  const auto& bias = layer->bias;
  const auto shape = with_last(x, weight.size(0));
  if (gradient_wanted({x, weight, bias, residual}) || !takes_onednn(x, weight, bias, use_onednn) ||
      !residual_fits(residual, shape))
    return residual + linear(layer, x, use_onednn);
  const auto [x2, w] = product_operands(x, weight, bf16_linear);
  return product_add(x2, w, bias, residual, shape);
}

bool cpu_has_avx512_bf16() { return kernels::bf16_converter_available(); }

std::string bf16_unsupported_reason(bool cpu_has_bf16, bool have_onednn) {
  if (!cpu_has_bf16)
    return "train.precision: bad value 'bf16' here: bf16 needs a CPU with AVX512_BF16 (bf16 dot "
           "products), and this CPU has none; accepted on this machine: fp32";
  if (!have_onednn)
    return "train.precision: bad value 'bf16' here: bf16 needs oneDNN, and this build has none "
           "(install libdnnl-dev and rebuild); accepted in this build: fp32";
  return "";
}

Bf16ProductsGuard::Bf16ProductsGuard(bool enabled) : previous_(bf16_linear) {
  if (enabled) {
    const auto reason = bf16_unsupported_reason(cpu_has_avx512_bf16(), onednn_available());
    if (!reason.empty()) throw ConfigError(reason);
  }
  bf16_linear = enabled;
}

Bf16ProductsGuard::~Bf16ProductsGuard() { bf16_linear = previous_; }

bool bf16_products_enabled() { return bf16_linear; }

}  // namespace pelab
