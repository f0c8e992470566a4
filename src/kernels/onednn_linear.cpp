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

// What a PackedWeightsScope holds. Every weight it has seen stays referenced until the scope
// ends, so no other tensor can take its address meanwhile: an address (with the view's shape)
// names one weight for the scope's whole life. The products take the scope's own copies (float32
// or bf16), never the parameters themselves, so only inference's products find them here: a
// product with a gradient reads the parameter as it is, even inside a scope.
struct PackedWeights {
  struct Prepared {
    torch::Tensor weight;   // the float32 parameter, kept alive
    bool bf16;              // whether `operand` is its bf16 copy
    torch::Tensor operand;  // what inference's products take: a copy of the weight
  };
  std::vector<Prepared> prepared;
  // Weights concatenated for one product (concatenated_weights), once per scope.
  struct Concatenated {
    std::vector<torch::Tensor> parts;
    torch::Tensor whole;
  };
  std::vector<Concatenated> concatenated;
#ifdef PELAB_HAVE_ONEDNN
  // Copies of operands (transposed, as the products' right side) in the layouts primitives asked
  // for; each is made by one reorder on first use.
  struct Packed {
    const void* operand;
    dnnl::memory::desc layout;
    dnnl::memory memory;
  };
  std::vector<Packed> packed;
#endif
};
thread_local PackedWeights* packed_weights = nullptr;

bool same_view(const torch::Tensor& a, const torch::Tensor& b) {
  return a.data_ptr() == b.data_ptr() && a.sizes() == b.sizes() && a.strides() == b.strides();
}

// Whether the scope made `t` by concatenating weights.
bool scope_concatenation(const torch::Tensor& t) {
  for (const auto& entry : packed_weights->concatenated)
    if (same_view(entry.whole, t)) return true;
  return false;
}

// Whether b, the right side of a product, is the transpose of an operand the scope prepared.
bool prepared_transpose(const torch::Tensor& b) {
  if (!packed_weights || b.dim() != 2) return false;
  const auto t = b.t();
  for (const auto& entry : packed_weights->prepared)
    if (same_view(entry.operand, t)) return true;
  return false;
}

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
// dozen shapes, so each is built once. With `packed_b` the primitive reads b in the layout it
// chooses itself (weights_layout), which PackedWeightsScope's copies are made in.
using PrimitiveKey = std::tuple<dnnl::memory::dims, dnnl::memory::dims, dnnl::memory::dims,
                                dnnl::memory::dims, int, int, int, bool, bool, bool>;
struct Matmul {
  dnnl::matmul primitive;
  dnnl::memory::desc weights_layout;
};

Matmul matmul_primitive(const Operand& a, const Operand& b, dnnl::memory::data_type type,
                        dnnl::memory::data_type result_type, bool with_bias, bool relu_after,
                        bool with_addend, bool packed_b) {
  static std::mutex mutex;
  static std::map<PrimitiveKey, Matmul> cache;
  const PrimitiveKey key{a.dims,           a.strides,       b.dims,    b.strides,   int(type),
                         int(result_type), int(relu_after), with_bias, with_addend, packed_b};
  std::lock_guard<std::mutex> lock(mutex);
  auto found = cache.find(key);
  if (found != cache.end()) return found->second;
  using dt = dnnl::memory::data_type;
  const auto M = a.dims[0], N = b.dims[1];
  dnnl::memory::desc a_md(a.dims, type, a.strides);
  dnnl::memory::desc b_md = packed_b
                                ? dnnl::memory::desc(b.dims, type, dnnl::memory::format_tag::any)
                                : dnnl::memory::desc(b.dims, type, b.strides);
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
  const dnnl::matmul::primitive_desc primitive_desc(desc, attr, cpu_engine());
  const Matmul matmul{dnnl::matmul(primitive_desc), primitive_desc.weights_desc()};
  cache.emplace(key, matmul);
  return matmul;
}

// The scope's copy of b (a prepared operand's transpose, in `plain`) in `layout`, made by one
// reorder the first time a primitive asks for that layout.
dnnl::memory packed_copy(const dnnl::memory& plain, const void* operand,
                         const dnnl::memory::desc& layout, dnnl::stream& stream) {
  for (const auto& entry : packed_weights->packed)
    if (entry.operand == operand && entry.layout == layout) return entry.memory;
  dnnl::memory copy(layout, cpu_engine());
  dnnl::reorder(plain, copy).execute(stream, const_cast<dnnl::memory&>(plain), copy);
  stream.wait();
  packed_weights->packed.push_back({operand, layout, copy});
  return copy;
}

#endif  // PELAB_HAVE_ONEDNN

void* data(const torch::Tensor& t) { return const_cast<void*>(t.data_ptr()); }

// y = x W^T + b (then ReLU when `relu`) through oneDNN; backward through the same matmul. Under
// bf16 the saved x and W are bf16 copies (half the memory of float32 ones) and dY is rounded to
// bf16 for the products. `inference`: no gradient flows through this call (product_weight).
class OneDnnLinearFunction : public torch::autograd::Function<OneDnnLinearFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, bool bf16,
                               bool relu, bool inference) {
    const auto out = weight.size(0);
    auto [x2, w] = product_operands(x, weight, bf16, inference);
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
      if (bf16) {
        dy = dy.contiguous();
        if (bias_grad) db = torch::empty({out}, dy.options());
        dy_product = bias_grad_and_bf16(dy, db);
      } else {
        if (bias_grad) db = dy.sum(0);
        dy_product = dy;
      }
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
    return {dx, dw, db, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

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
  const bool packed_b = prepared_transpose(b);
  const auto matmul = matmul_primitive(oa, ob, type, result_type, bias.defined(), relu_after,
                                       addend.defined(), packed_b);
  const auto M = oa.dims[0], N = ob.dims[1];
  using dt = dnnl::memory::data_type;
  auto& engine = cpu_engine();
  dnnl::stream stream(engine);
  const dnnl::memory b_memory({ob.dims, type, ob.strides}, engine, data(ob.tensor));
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, dnnl::memory({oa.dims, type, oa.strides}, engine, data(oa.tensor))},
      {DNNL_ARG_WEIGHTS,
       packed_b ? packed_copy(b_memory, ob.tensor.data_ptr(), matmul.weights_layout, stream)
                : b_memory},
      {DNNL_ARG_DST, dnnl::memory({{M, N}, result_type, {N, 1}}, engine, data(c))}};
  if (bias.defined())
    args.emplace(DNNL_ARG_BIAS,
                 dnnl::memory({{1, N}, dt::f32, {N, 1}}, engine, data(bias_contiguous)));
  if (addend.defined()) {
    const int addend_index = relu_after ? 1 : 0;  // its place among the post-ops
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(addend_index) | DNNL_ARG_SRC_1,
                 dnnl::memory({{M, N}, dt::f32, {N, 1}}, engine, data(addend)));
  }
  matmul.primitive.execute(stream, args);
  stream.wait();
#else
  TORCH_CHECK(false, "onednn_matmul: this build has no oneDNN");
#endif
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     bool use_onednn) {
  if (!takes_onednn(x, weight, bias, use_onednn))
    return torch::nn::functional::linear(x, weight, bias);
  return OneDnnLinearFunction::apply(x, weight, bias_or_empty(bias), bf16_linear, false,
                                     !gradient_wanted({x, weight, bias}));
}

torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x, bool use_onednn) {
  return linear(x, layer->weight, layer->bias, use_onednn);
}

torch::Tensor linear_relu(const torch::nn::Linear& layer, const torch::Tensor& x, bool use_onednn) {
  if (!takes_onednn(x, layer->weight, layer->bias, use_onednn))
    return torch::relu(torch::nn::functional::linear(x, layer->weight, layer->bias));
  return OneDnnLinearFunction::apply(x, layer->weight, bias_or_empty(layer->bias), bf16_linear,
                                     true, !gradient_wanted({x, layer->weight, layer->bias}));
}

torch::Tensor linear_add(const torch::nn::Linear& layer, const torch::Tensor& x,
                         const torch::Tensor& residual, bool use_onednn) {
  const auto& weight = layer->weight;
  const auto& bias = layer->bias;
  const auto shape = with_last(x, weight.size(0));
  if (gradient_wanted({x, weight, bias, residual}) || !takes_onednn(x, weight, bias, use_onednn) ||
      !residual_fits(residual, shape))
    return residual + linear(layer, x, use_onednn);
  const auto [x2, w] = product_operands(x, weight, bf16_linear, true);
  return product_add(x2, w, bias, residual, shape);
}

namespace linear_parts {

torch::Tensor product_weight(const torch::Tensor& weight, bool bf16, bool inference) {
  // Only what lives as long as the scope is prepared: parameters (which require a gradient
  // even where none is wanted) and the scope's own concatenations, never a tensor made for one
  // batch, whose address the next batch's tensors may take.
  if (!packed_weights || !inference || !(weight.requires_grad() || scope_concatenation(weight)))
    return bf16 ? bf16_copy(weight) : weight;
  for (const auto& entry : packed_weights->prepared)
    if (entry.bf16 == bf16 && same_view(entry.weight, weight)) return entry.operand;
  auto operand = bf16 ? bf16_copy(weight) : weight.clone();
  packed_weights->prepared.push_back({weight, bf16, operand});
  return operand;
}

}  // namespace linear_parts

torch::Tensor concatenated_weights(const std::vector<torch::Tensor>& parts) {
  const bool gradient = torch::GradMode::is_enabled() &&
                        std::any_of(parts.begin(), parts.end(),
                                    [](const torch::Tensor& t) { return t.requires_grad(); });
  if (!packed_weights || gradient) return torch::cat(parts);
  for (const auto& entry : packed_weights->concatenated)
    if (std::equal(entry.parts.begin(), entry.parts.end(), parts.begin(), parts.end(), same_view))
      return entry.whole;
  auto whole = torch::cat(parts);
  packed_weights->concatenated.push_back({parts, whole});
  return whole;
}

PackedWeightsScope::PackedWeightsScope() : outermost_(packed_weights == nullptr) {
  if (outermost_) packed_weights = new PackedWeights;
}

PackedWeightsScope::~PackedWeightsScope() {
  if (!outermost_) return;
  delete packed_weights;
  packed_weights = nullptr;
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
