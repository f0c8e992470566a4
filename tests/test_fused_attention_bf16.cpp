// The fused attention kernels with bf16 products (train.precision = "bf16"): outputs and every
// gradient against a double-precision explicit computation, within bf16's tolerance, for shapes
// with odd lengths and dims, every mask and bias; RoPE inside the kernels, dropout and the bias
// gradient against the float32 kernels; the same bits on every run and thread count. Each test
// runs the products on VDPBF16PS register tiles and, where the CPU has AMX-BF16, on AMX tiles.
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "attention_reference.h"
#include "fixtures.h"
#include "kernels/fused_attention.h"
#include "kernels/onednn_linear.h"
#include "pe/pe.h"

using namespace pelab;
using namespace pelab::testing_reference;

namespace {

// Relative norm error of bf16 products: each operand carries 8 mantissa bits (2^-9 relative
// rounding); logits, weights and gradients each go through one or two rounded products.
// Measured here: 0.1-0.35% on outputs, at most 0.9% on gradients.
constexpr double kBf16AttentionTolerance = 2e-2;
// The float32 kernels against the same reference: what shows that the bf16 ones did round.
constexpr double kFloat32AttentionTolerance = 1e-5;
// AMX tiles against VDPBF16PS on the same operands: float32 sums rounded differently, and now and
// then a weight or dS on the other side of a bf16 rounding boundary. Measured: at most 7e-5.
constexpr double kAmxAgreement = 5e-4;

bool bf16_attention_runs() { return cpu_has_avx512_bf16() && onednn_available(); }

// Odd lengths (row pairs and key pairs with a zero partner), dims that are not whole vectors,
// and more keys than one vector. Not one position: there the true q and k gradients are zero
// (one weight of 1) and a relative error measures rounding noise against rounding noise.
const std::vector<AttentionShape> kBf16Shapes = {
    {2, 3, 17, 8, 8},   {1, 1, 5, 16, 16},   {3, 2, 33, 24, 16},
    {2, 1, 40, 12, 20}, {1, 2, 130, 32, 32}, {1, 2, 31, 7, 9},
};

// The fused kernels (bf16 products or not) on float32 inputs, or the explicit computation in
// double precision: output, grad q, grad k, grad v (, grad bias).
std::vector<torch::Tensor> run_fused_or_double(const torch::Tensor& q, const torch::Tensor& k,
                                               const torch::Tensor& v, const torch::Tensor& bias,
                                               bool learn_bias, const torch::Tensor& mask,
                                               const torch::Tensor& grad_out, double scale,
                                               const std::string& how) {
  const bool reference = how == "double";
  const auto dtype = reference ? torch::kDouble : torch::kFloat;
  // Copies (.to(kFloat) of a float tensor would be the caller's tensor, gathering gradients).
  auto qq = q.to(dtype).clone().requires_grad_(true), kk = k.to(dtype).clone().requires_grad_(true),
       vv = v.to(dtype).clone().requires_grad_(true);
  torch::Tensor bb;
  if (bias.defined()) bb = bias.to(dtype).clone().requires_grad_(learn_bias);
  const torch::Tensor mm = mask.defined() ? mask.to(dtype) : mask;
  torch::Tensor out;
  if (reference) {
    out = explicit_attention(qq, kk, vv, bb, mm, scale);
  } else {
    const Bf16ProductsGuard precision(how == "bf16");
    out = fused_attention(qq, kk, vv, bb, mm, scale, 0.0);
  }
  (out * grad_out.to(dtype)).sum().backward();
  std::vector<torch::Tensor> results = {out.detach(), qq.grad(), kk.grad(), vv.grad()};
  if (learn_bias) results.push_back(bb.grad());
  return results;
}

const char* kBf16Names[] = {"output", "grad q", "grad k", "grad v", "grad bias"};

// The product routines to test: VDPBF16PS register tiles always, AMX tiles where they run.
std::vector<bool> amx_tile_settings() {
  if (amx_attention_tiles_available()) return {false, true};
  return {false};
}
const char* product_name(bool tiles) { return tiles ? "AMX tiles" : "VDPBF16PS"; }

// Sets the AMX switch for a scope, back on (the default) after.
class AmxTiles {
 public:
  explicit AmxTiles(bool use) { use_amx_attention_tiles(use); }
  ~AmxTiles() { use_amx_attention_tiles(true); }
  AmxTiles(const AmxTiles&) = delete;
  AmxTiles& operator=(const AmxTiles&) = delete;
};

}  // namespace

TEST(FusedAttentionBf16, TheGuardSelectsTheBf16Kernels) {
  if (!bf16_attention_runs()) GTEST_SKIP() << "no AVX512_BF16 or no oneDNN";
  const std::string float32_kernels = fused_attention_isa();
  for (bool tiles : amx_tile_settings()) {
    const AmxTiles products(tiles);
    const Bf16ProductsGuard precision;
    const std::string bf16_kernels = tiles ? "amx" : "avx512bf16";
    EXPECT_EQ(fused_attention_isa(), float32_kernels == "avx512" ? bf16_kernels : float32_kernels);
  }
  EXPECT_EQ(fused_attention_isa(), float32_kernels);
}

// Every shape x mask x bias: bf16 within its tolerance of double precision, and visibly rounded
// (the float32 kernels are 1000x closer on the same inputs).
TEST(FusedAttentionBf16, MatchesDoublePrecisionWithinBf16Tolerance) {
  if (!bf16_attention_runs()) GTEST_SKIP() << "no AVX512_BF16 or no oneDNN";
  if (fused_attention_isa() != "avx512")
    GTEST_SKIP() << "kernels forced to " << fused_attention_isa();
  for (bool tiles : amx_tile_settings()) {
    const AmxTiles products(tiles);
    torch::manual_seed(21);
    for (const auto& s : kBf16Shapes)
      for (const std::string mask_kind : {"none", "padding", "causal"})
        for (const std::string bias_kind : {"none", "steep", "learned"}) {
          const std::string label =
              fmt::format("{}: B{} H{} L{} Dk{} Dv{} mask={} bias={}", product_name(tiles), s.batch,
                          s.heads, s.length, s.qk_dim, s.v_dim, mask_kind, bias_kind);
          const auto q = torch::randn({s.batch, s.heads, s.length, s.qk_dim});
          const auto k = torch::randn({s.batch, s.heads, s.length, s.qk_dim});
          const auto v = torch::randn({s.batch, s.heads, s.length, s.v_dim});
          const auto grad_out = torch::randn({s.batch, s.length, s.heads * s.v_dim});
          torch::Tensor bias;
          if (bias_kind == "steep") {
            bias = steep_bias(s.heads, s.length);
          } else if (bias_kind == "learned") {
            bias = torch::randn({s.heads, s.length, s.length});
          }
          const auto mask = make_mask(mask_kind, s.batch, s.length);
          const double scale = 1.0 / std::sqrt(double(s.qk_dim));
          const bool learn = bias_kind == "learned";
          const auto reference =
              run_fused_or_double(q, k, v, bias, learn, mask, grad_out, scale, "double");
          const auto bf16 =
              run_fused_or_double(q, k, v, bias, learn, mask, grad_out, scale, "bf16");
          const auto fp32 =
              run_fused_or_double(q, k, v, bias, learn, mask, grad_out, scale, "fp32");
          double largest_bf16_error = 0;
          for (size_t i = 0; i < reference.size(); ++i) {
            const auto expected = reference[i].to(torch::kFloat);
            const double bf16_error = relative_error(bf16[i], expected);
            EXPECT_LT(bf16_error, kBf16AttentionTolerance) << label << " " << kBf16Names[i];
            EXPECT_LT(relative_error(fp32[i], expected), kFloat32AttentionTolerance)
                << label << " " << kBf16Names[i];
            largest_bf16_error = std::max(largest_bf16_error, bf16_error);
          }
          EXPECT_GT(largest_bf16_error, 10 * kFloat32AttentionTolerance)
              << label << ": nothing rounded";
        }
  }
}

// RoPE's tables inside the kernels, dropout and a padding mask, with the bias gradient: the bf16
// kernels against the float32 ones given the same dropout seed.
TEST(FusedAttentionBf16, RopeDropoutAndBiasGradientMatchFloat32WithinBf16Tolerance) {
  if (!bf16_attention_runs()) GTEST_SKIP() << "no AVX512_BF16 or no oneDNN";
  if (fused_attention_isa() != "avx512")
    GTEST_SKIP() << "kernels forced to " << fused_attention_isa();
  PeOptions options;
  options.model = test_fixtures::small_model_config("xpos", "padding");
  options.model.n_heads = 3;
  options.model.d_model = 3 * 24;
  options.model.rotary_heads = 2;
  options.max_len = 64;
  const auto pe = make_pe(options);
  torch::manual_seed(6);
  const int64_t B = 2, H = 3, L = 37, D = 24;
  const auto positions = torch::arange(L);
  const auto q = torch::randn({B, H, L, D}), k = torch::randn({B, H, L, D}),
             v = torch::randn({B, H, L, D}), bias = torch::randn({H, L, L}),
             grad_out = torch::randn({B, L, H * D});
  const auto mask = make_mask("padding", B, L);
  const auto tables = pe->rotary_tables(positions);
  ASSERT_TRUE(tables.defined());
  auto run_kernels = [&](bool bf16) {
    auto qq = q.clone().requires_grad_(true), kk = k.clone().requires_grad_(true),
         vv = v.clone().requires_grad_(true), bb = bias.clone().requires_grad_(true);
    const Bf16ProductsGuard precision(bf16);
    torch::manual_seed(9);  // the same dropout mask for both
    const auto out = fused_attention(qq, kk, vv, bb, mask, 0.2, 0.1, tables);
    (out * grad_out).sum().backward();
    return std::vector<torch::Tensor>{out.detach(), qq.grad(), kk.grad(), vv.grad(), bb.grad()};
  };
  const auto fp32 = run_kernels(false);
  for (bool tiles : amx_tile_settings()) {
    const AmxTiles products(tiles);
    const auto bf16 = run_kernels(true);
    for (size_t i = 0; i < fp32.size(); ++i) {
      const double error = relative_error(bf16[i], fp32[i]);
      EXPECT_LT(error, kBf16AttentionTolerance) << product_name(tiles) << " " << kBf16Names[i];
      EXPECT_GT(error, kFloat32AttentionTolerance)
          << product_name(tiles) << " " << kBf16Names[i] << ": the bf16 kernels did not run";
    }
  }
}

// Deterministic: the same bits on a second run and on one thread instead of two (each
// (batch, head) pair is one thread's work; the bias gradient sums a head's batch in order).
TEST(FusedAttentionBf16, TheSameBitsOnEveryRunAndThreadCount) {
  if (!bf16_attention_runs()) GTEST_SKIP() << "no AVX512_BF16 or no oneDNN";
  torch::manual_seed(7);
  const int64_t B = 3, H = 4, L = 45, D = 16;
  const auto q = torch::randn({B, H, L, D}), k = torch::randn({B, H, L, D}),
             v = torch::randn({B, H, L, D}), bias = torch::randn({H, L, L}),
             grad_out = torch::randn({B, L, H * D});
  const auto mask = make_mask("padding", B, L);
  auto run_once = [&] {
    auto qq = q.clone().requires_grad_(true), kk = k.clone().requires_grad_(true),
         vv = v.clone().requires_grad_(true), bb = bias.clone().requires_grad_(true);
    const Bf16ProductsGuard precision;
    torch::manual_seed(3);
    const auto out = fused_attention(qq, kk, vv, bb, mask, 0.25, 0.1);
    (out * grad_out).sum().backward();
    return std::vector<torch::Tensor>{out.detach(), qq.grad(), kk.grad(), vv.grad(), bb.grad()};
  };
  const int threads = at::get_num_threads();
  for (bool tiles : amx_tile_settings()) {
    const AmxTiles products(tiles);
    const auto first = run_once(), second = run_once();
    at::set_num_threads(1);
    const auto single = run_once();
    at::set_num_threads(threads);
    for (size_t i = 0; i < first.size(); ++i) {
      EXPECT_TRUE(torch::equal(first[i], second[i])) << product_name(tiles) << " " << kBf16Names[i];
      EXPECT_TRUE(torch::equal(first[i], single[i]))
          << product_name(tiles) << " " << kBf16Names[i] << " on one thread";
    }
  }
}

// AMX tiles and VDPBF16PS multiply the same bf16 operands; they differ only in how the float32
// sums round (AMX adds a pair's two exact products before rounding, VDPBF16PS rounds after each,
// measured in docs/PERFORMANCE.md). So they agree far more closely than either agrees with double
// precision, on shapes whose rows, dims and keys are not whole tiles (the zero padding and the
// rows left to VDPBF16PS) and with a learned bias.
TEST(FusedAttentionBf16, AmxTilesAgreeWithRegisterTilesToFloat32Sums) {
  if (!bf16_attention_runs()) GTEST_SKIP() << "no AVX512_BF16 or no oneDNN";
  if (!amx_attention_tiles_available()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  if (fused_attention_isa() != "avx512")
    GTEST_SKIP() << "kernels forced to " << fused_attention_isa();
  torch::manual_seed(23);
  for (const auto& s : kBf16Shapes)
    for (const std::string mask_kind : {"padding", "causal"}) {
      const std::string label = fmt::format("B{} H{} L{} Dk{} Dv{} mask={}", s.batch, s.heads,
                                            s.length, s.qk_dim, s.v_dim, mask_kind);
      const auto q = torch::randn({s.batch, s.heads, s.length, s.qk_dim});
      const auto k = torch::randn({s.batch, s.heads, s.length, s.qk_dim});
      const auto v = torch::randn({s.batch, s.heads, s.length, s.v_dim});
      const auto grad_out = torch::randn({s.batch, s.length, s.heads * s.v_dim});
      const auto bias = torch::randn({s.heads, s.length, s.length});
      const auto mask = make_mask(mask_kind, s.batch, s.length);
      const double scale = 1.0 / std::sqrt(double(s.qk_dim));
      auto run = [&](bool tiles) {
        const AmxTiles products(tiles);
        return run_fused_or_double(q, k, v, bias, true, mask, grad_out, scale, "bf16");
      };
      const auto on_tiles = run(true), on_registers = run(false);
      for (size_t i = 0; i < on_tiles.size(); ++i) {
        EXPECT_LT(relative_error(on_tiles[i], on_registers[i]), kAmxAgreement)
            << label << " " << kBf16Names[i];
      }
    }
}
