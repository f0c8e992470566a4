// Tensors in, kernels out: shape checks, the autograd Function, the dropout seed, the split of
// (batch, head) pairs over threads and the choice of instruction set.
#include "kernels/fused_attention.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "kernels/attention_kernel.h"
#include "kernels/bf16_convert.h"
#include "kernels/onednn_linear.h"

namespace pelab {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

bool cpu_has(const std::string& isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (isa == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return isa == "generic";
}

const kernels::KernelTable* usable_table(const std::string& isa) {
  const kernels::KernelTable* table = nullptr;
  if (isa == "avx512") table = &kernels::avx512_kernels();
  if (isa == "avx2") table = &kernels::avx2_kernels();
  if (isa == "generic") table = &kernels::generic_kernels();
  return table && table->forward && cpu_has(isa) ? table : nullptr;
}

std::atomic<const kernels::KernelTable*>& current_table() {
  static std::atomic<const kernels::KernelTable*> table = [] {
    if (const char* forced = std::getenv("PELAB_KERNEL_ISA"))
      if (auto* t = usable_table(forced)) return t;
    return usable_table(fused_attention_isas().front());
  }();
  return table;
}

// Whether the bf16 kernels run their products on AMX tiles where the CPU has them: yes, unless
// $PELAB_BF16_ATTENTION_TILES=0 or use_amx_attention_tiles(false) (tests and benchmarks compare).
std::atomic<bool>& amx_tiles_wanted() {
  static std::atomic<bool> wanted = [] {
    const char* setting = std::getenv("PELAB_BF16_ATTENTION_TILES");
    return !(setting && std::string(setting) == "0");
  }();
  return wanted;
}

// The kernels of one call: under train.precision = "bf16" (Bf16ProductsGuard) the avx512 kernels
// with bf16 products, where the CPU has AVX512_BF16 and avx512 is the instruction set in use, on
// AMX tiles where it has those too; otherwise the instruction set's float32 kernels.
// PELAB_FLOAT32_ATTENTION=1 keeps the float32 kernels under bf16 (bench/optimisations.sh measures
// what the bf16 products buy with it).
const kernels::KernelTable* kernels_for(bool bf16_products) {
  static const bool float32_attention = [] {
    const char* setting = std::getenv("PELAB_FLOAT32_ATTENTION");
    return setting && std::string(setting) == "1";
  }();
  const kernels::KernelTable* table = current_table().load();
  const kernels::KernelTable& bf16 = kernels::bf16_kernels();
  if (!bf16_products || float32_attention || table != &kernels::avx512_kernels() || !bf16.forward ||
      !kernels::bf16_converter_available())
    return table;
  if (amx_tiles_wanted().load() && amx_attention_tiles_available()) return &kernels::amx_kernels();
  return &bf16;
}

kernels::StridedOperand operand(const Tensor& t) {
  return {t.data_ptr<float>(), t.stride(0), t.stride(1), t.stride(2)};
}

// A [B, H, L, D] gradient stored as [B, L, H, D], the layout of the projection that split_heads
// views (and of the packed q/k/v product's parts): the view's backward then takes it as it is,
// where a [B, H, L, D] buffer would be copied again, head by head, into [B, L, H D].
Tensor empty_head_gradient(const Tensor& like) {
  return torch::empty({like.size(0), like.size(2), like.size(1), like.size(3)}, like.options())
      .transpose(1, 2);
}

kernels::StridedResult result(Tensor& t) {
  return {t.data_ptr<float>(), t.stride(0), t.stride(1), t.stride(2)};
}

// The kernels read the last axis contiguously.
Tensor with_contiguous_rows(const Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

// RoPE's tables as the kernels read them (interleaved rows, float32 contiguous); empty tensors
// when there is no rotation (they travel through the autograd Function, which refuses undefined
// tensors).
struct KernelRotation {
  Tensor q_cos, q_sin, k_cos, k_sin;
  int64_t heads = 0;

  KernelRotation() : q_cos(torch::empty({0})), q_sin(q_cos), k_cos(q_cos), k_sin(q_cos) {}
  KernelRotation(Tensor qc, Tensor qs, Tensor kc, Tensor ks, int64_t h)
      : q_cos(std::move(qc)),
        q_sin(std::move(qs)),
        k_cos(std::move(kc)),
        k_sin(std::move(ks)),
        heads(h) {}
  explicit KernelRotation(const RotaryTables& t) : KernelRotation() {
    if (!t.defined()) return;
    std::tie(q_cos, q_sin) = interleaved_rotary_rows(t.q_cos, t.q_sin);
    // Without magnitudes (all but xPos and YaRN) q and k share one table: laid out once.
    const bool shared = t.k_cos.is_same(t.q_cos) && t.k_sin.is_same(t.q_sin);
    std::tie(k_cos, k_sin) =
        shared ? std::make_pair(q_cos, q_sin) : interleaved_rotary_rows(t.k_cos, t.k_sin);
    heads = t.heads;
  }
  bool defined() const { return q_cos.numel() > 0; }
};

// Describes one call; out is [B, Lq, H, Dv] (heads merged by a free view afterwards).
kernels::AttentionProblem describe(const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& bias, const Tensor& mask,
                                   const KernelRotation& rotation, double scale, double dropout_p,
                                   uint64_t seed, const Tensor& out) {
  kernels::AttentionProblem p;
  p.batch = q.size(0);
  p.heads = q.size(1);
  p.q_len = q.size(2);
  p.k_len = k.size(2);
  p.qk_dim = q.size(3);
  p.v_dim = v.size(3);
  p.q = operand(q);
  p.k = operand(k);
  p.v = operand(v);
  p.bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
  if (mask.defined()) p.mask = operand(mask);
  if (rotation.defined()) {
    p.q_cos = rotation.q_cos.data_ptr<float>();
    p.q_sin = rotation.q_sin.data_ptr<float>();
    p.k_cos = rotation.k_cos.data_ptr<float>();
    p.k_sin = rotation.k_sin.data_ptr<float>();
    p.rotary_dims = rotation.q_cos.size(1);
    p.rotary_heads = rotation.heads;
  }
  p.scale = static_cast<float>(scale);
  p.dropout_p = static_cast<float>(dropout_p);
  p.dropout_seed = seed;
  p.out = out.data_ptr<float>();
  p.out_batch = out.stride(0);
  p.out_head = out.stride(2);
  p.out_row = out.stride(1);
  return p;
}

// Runs `work(unit)` for every unit in [0, units) on `workers` threads (at::parallel_for, so
// LibTorch's OpenMP pool). Units are handed out one at a time from a shared counter rather than
// in fixed halves: with right padding the cost of a (batch, head) pair follows its sequence's
// length, and on a busy machine one thread may get less CPU than the other.
template <typename Work>
void for_each_unit(int64_t units, int64_t workers, const Work& work) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, workers, 1, [&](int64_t first_worker, int64_t last_worker) {
    for (int64_t worker = first_worker; worker < last_worker; ++worker)
      for (int64_t unit = next++; unit < units; unit = next++) work(unit);
  });
}

uint64_t draw_dropout_seed() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

// Forward without autograd; fills row_max / row_inv_sum when given.
Tensor run_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                   const Tensor& mask, const KernelRotation& rotation, double scale,
                   double dropout_p, uint64_t seed, const Tensor& row_max,
                   const Tensor& row_inv_sum, const kernels::KernelTable* table) {
  const auto B = q.size(0), H = q.size(1), Lq = q.size(2), Dv = v.size(3);
  Tensor out = torch::empty({B, Lq, H, Dv}, q.options());
  kernels::AttentionProblem p =
      describe(q, k, v, bias, mask, rotation, scale, dropout_p, seed, out);
  if (row_max.defined()) {
    p.row_max = row_max.data_ptr<float>();
    p.row_inv_sum = row_inv_sum.data_ptr<float>();
  }
  for_each_unit(B * H, at::get_num_threads(),
                [&](int64_t pair) { table->forward(p, pair, pair + 1); });
  return out;
}

// LibTorch 1.13's custom Functions refuse undefined tensor arguments; an absent bias or mask
// travels as this empty stand-in.
Tensor or_empty(const Tensor& t) { return t.defined() ? t : torch::empty({0}); }
Tensor or_undefined(const Tensor& t) { return t.numel() > 0 ? t : Tensor(); }

class FusedAttentionFunction : public torch::autograd::Function<FusedAttentionFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& bias_or_empty, const Tensor& mask_or_empty,
                        const Tensor& q_cos, const Tensor& q_sin, const Tensor& k_cos,
                        const Tensor& k_sin, int64_t rotary_heads, double scale, double dropout_p,
                        bool bf16_products) {
    const Tensor bias = or_undefined(bias_or_empty), mask = or_undefined(mask_or_empty);
    const KernelRotation rotation(q_cos, q_sin, k_cos, k_sin, rotary_heads);
    const uint64_t seed = dropout_p > 0 ? draw_dropout_seed() : 0;
    auto stats_options = q.options().requires_grad(false);
    Tensor row_max = torch::empty({q.size(0), q.size(1), q.size(2)}, stats_options);
    Tensor row_inv_sum = torch::empty_like(row_max);
    Tensor out = run_forward(q, k, v, bias, mask, rotation, scale, dropout_p, seed, row_max,
                             row_inv_sum, kernels_for(bf16_products));
    ctx->save_for_backward({q, k, v, bias_or_empty, mask_or_empty, out, row_max, row_inv_sum, q_cos,
                            q_sin, k_cos, k_sin});
    ctx->saved_data["rotary_heads"] = rotary_heads;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["dropout_p"] = dropout_p;
    ctx->saved_data["seed"] = static_cast<int64_t>(seed);
    ctx->saved_data["bf16_products"] = bf16_products;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &q = saved[0], &k = saved[1], &v = saved[2];
    const Tensor bias = or_undefined(saved[3]), mask = or_undefined(saved[4]);
    const Tensor &out = saved[5], &row_max = saved[6], &row_inv_sum = saved[7];
    const KernelRotation rotation(saved[8], saved[9], saved[10], saved[11],
                                  ctx->saved_data["rotary_heads"].toInt());
    const Tensor grad_out = grads[0].contiguous();
    const double scale = ctx->saved_data["scale"].toDouble();
    const double dropout_p = ctx->saved_data["dropout_p"].toDouble();
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());

    kernels::AttentionProblem p =
        describe(q, k, v, bias, mask, rotation, scale, dropout_p, seed, out);
    p.row_max = row_max.data_ptr<float>();
    p.row_inv_sum = row_inv_sum.data_ptr<float>();
    p.grad_out = grad_out.data_ptr<float>();
    p.grad_out_batch = grad_out.stride(0);
    p.grad_out_head = grad_out.stride(2);
    p.grad_out_row = grad_out.stride(1);
    Tensor grad_q = empty_head_gradient(q), grad_k = empty_head_gradient(k),
           grad_v = empty_head_gradient(v);
    p.grad_q = result(grad_q);
    p.grad_k = result(grad_k);
    p.grad_v = result(grad_v);

    const int64_t workers = at::get_num_threads();
    const bool bias_grad = bias.defined() && ctx->needs_input_grad(3);
    // The forward's kernels again: the backward recomputes its logits bit for bit.
    const kernels::KernelTable* table = kernels_for(ctx->saved_data["bf16_products"].toBool());
    const int64_t B = q.size(0), H = q.size(1);
    Tensor grad_bias;
    if (bias_grad) {
      // A thread takes a whole head and adds its batch elements into grad_bias[h] in batch
      // order: every element of the gradient is summed in one order, whatever the thread count
      // or the scheduling (per-thread accumulators summed at the end would not be).
      grad_bias = torch::zeros(bias.sizes(), q.options());
      float* grad_bias_data = grad_bias.data_ptr<float>();
      for_each_unit(H, workers, [&](int64_t h) {
        for (int64_t b = 0; b < B; ++b)
          table->backward(p, b * H + h, b * H + h + 1, grad_bias_data);
      });
    } else {
      for_each_unit(B * H, workers,
                    [&](int64_t pair) { table->backward(p, pair, pair + 1, nullptr); });
    }
    return {grad_q,   grad_k,   grad_v,   grad_bias, Tensor(), Tensor(), Tensor(),
            Tensor(), Tensor(), Tensor(), Tensor(),  Tensor(), Tensor()};
  }
};

}  // namespace

const kernels::KernelTable& kernels::active_kernels() { return *current_table().load(); }

bool fused_attention_supported(const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& bias, const Tensor& mask) {
  auto is_cpu_float = [](const Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.layout() == torch::kStrided;
  };
  if (!is_cpu_float(q) || !is_cpu_float(k) || !is_cpu_float(v)) return false;
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return false;
  const auto B = q.size(0), H = q.size(1), Lq = q.size(2), Lk = k.size(2);
  if (k.size(0) != B || k.size(1) != H || k.size(3) != q.size(3)) return false;
  if (v.size(0) != B || v.size(1) != H || v.size(2) != Lk) return false;
  if (bias.defined() && (!is_cpu_float(bias) || bias.dim() != 3 || bias.size(0) != H ||
                         bias.size(1) != Lq || bias.size(2) != Lk))
    return false;
  if (mask.defined()) {
    if (!is_cpu_float(mask) || mask.requires_grad() || mask.dim() != 4) return false;
    const int64_t full[4] = {B, H, Lq, Lk};
    for (int d = 0; d < 4; ++d)
      if (mask.size(d) != 1 && mask.size(d) != full[d]) return false;
  }
  return current_table().load() != nullptr;
}

Tensor fused_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                       const Tensor& bias_in, const Tensor& mask_in, double scale, double dropout_p,
                       const RotaryTables& rotation_tables) {
  TORCH_CHECK(fused_attention_supported(q_in, k_in, v_in, bias_in, mask_in),
              "fused_attention: unsupported operands q ", q_in.sizes(), " k ", k_in.sizes(), " v ",
              v_in.sizes());
  TORCH_CHECK(dropout_p >= 0 && dropout_p < 1, "fused_attention: dropout_p ", dropout_p,
              " outside [0, 1)");
  const Tensor q = with_contiguous_rows(q_in), k = with_contiguous_rows(k_in),
               v = with_contiguous_rows(v_in);
  if (rotation_tables.defined()) {
    const auto& t = rotation_tables;
    const bool shaped = t.q_cos.dim() == 2 && t.q_sin.sizes() == t.q_cos.sizes() &&
                        t.k_cos.dim() == 2 && t.k_sin.sizes() == t.k_cos.sizes() &&
                        t.q_cos.size(0) == q.size(2) && t.k_cos.size(0) == k.size(2) &&
                        t.k_cos.size(1) == t.q_cos.size(1) && 2 * t.q_cos.size(1) <= q.size(3);
    TORCH_CHECK(shaped, "fused_attention: RoPE tables q ", t.q_cos.sizes(), " k ", t.k_cos.sizes(),
                " do not fit q ", q.sizes(), " and k ", k.sizes(),
                " (expected [Lq, pairs] and [Lk, pairs] with 2 pairs <= head dim)");
    for (const Tensor* table : {&t.q_cos, &t.q_sin, &t.k_cos, &t.k_sin})
      TORCH_CHECK(!table->requires_grad(), "fused_attention: RoPE tables must not require grad");
  }
  const KernelRotation rotation(rotation_tables);
  const Tensor bias = bias_in.defined() ? bias_in.contiguous() : Tensor();
  Tensor mask;
  if (mask_in.defined()) {
    mask = mask_in.expand({q.size(0), q.size(1), q.size(2), k.size(2)});
    if (mask.stride(3) != 1) mask = mask.contiguous();
  }
  const auto B = q.size(0), Lq = q.size(2), H = q.size(1), Dv = v.size(3);
  const bool bf16_products = bf16_products_enabled();
  const bool needs_grad = torch::GradMode::is_enabled() &&
                          (q.requires_grad() || k.requires_grad() || v.requires_grad() ||
                           (bias.defined() && bias.requires_grad()));
  Tensor out;
  if (needs_grad) {
    out = FusedAttentionFunction::apply(q, k, v, or_empty(bias), or_empty(mask), rotation.q_cos,
                                        rotation.q_sin, rotation.k_cos, rotation.k_sin,
                                        rotation.heads, scale, dropout_p, bf16_products);
  } else {
    const uint64_t seed = dropout_p > 0 ? draw_dropout_seed() : 0;
    out = run_forward(q, k, v, bias, mask, rotation, scale, dropout_p, seed, Tensor(), Tensor(),
                      kernels_for(bf16_products));
  }
  return out.view({B, Lq, H * Dv});
}

std::vector<std::string> fused_attention_isas() {
  std::vector<std::string> names;
  for (const char* isa : {"avx512", "avx2", "generic"})
    if (usable_table(isa)) names.emplace_back(isa);
  return names;
}

std::string fused_attention_isa() { return kernels_for(bf16_products_enabled())->isa; }

bool amx_attention_tiles_available() {
  return kernels::amx_kernels().forward && kernels::amx_tiles_usable();
}

void use_amx_attention_tiles(bool use) { amx_tiles_wanted().store(use); }

void set_fused_attention_isa(const std::string& name) {
  const kernels::KernelTable* table = usable_table(name);
  if (!table)
    throw std::invalid_argument("fused attention: instruction set '" + name +
                                "' is not available on this CPU");
  current_table().store(table);
}

}  // namespace pelab
