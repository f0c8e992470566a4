#include "bench/gemm_rates.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>

#include "kernels/onednn_linear.h"

namespace pelab {
namespace {

using Clock = std::chrono::steady_clock;

// Runs `product` 2 times untimed, then until `seconds` have passed (3 times at least); returns
// GFLOP/s.
double rate(double flops, double seconds, const std::function<void()>& product) {
  product();
  product();
  const auto start = Clock::now();
  int64_t calls = 0;
  double elapsed = 0;
  while (calls < 3 || elapsed < seconds) {
    product();
    ++calls;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return flops * double(calls) / elapsed / 1e9;
}

}  // namespace

double onednn_matmul_gflop_per_s(bool bf16, double seconds) {
  if (!onednn_available() || (bf16 && !cpu_has_avx512_bf16())) return 0;
  const int64_t n = 1024;
  const auto type = bf16 ? torch::kBFloat16 : torch::kFloat;
  auto a = torch::randn({n, n}).to(type), b = torch::randn({n, n}).to(type);
  auto c = torch::empty({n, n});
  return rate(2.0 * double(n * n * n), seconds, [&] { onednn_matmul(a, b, {}, c); });
}

std::vector<GemmRate> gemm_rates(double seconds, int rounds) {
  struct Shape {
    int64_t tokens, in, out;
  };
  const std::vector<Shape> shapes = {{8192, 128, 128}, {8192, 128, 384}, {8192, 256, 256},
                                     {8192, 256, 512}, {8192, 512, 256}, {1024, 1024, 1024}};
  std::vector<GemmRate> rates;
  std::map<std::pair<std::string, std::string>, size_t> index;
  auto record = [&](const std::string& product, const std::string& method, double value) {
    auto [it, added] = index.try_emplace({product, method}, rates.size());
    if (added) rates.push_back({product, method, 0});
    rates[it->second].gflop_per_s = std::max(rates[it->second].gflop_per_s, value);
  };
  torch::NoGradGuard no_grad;
  const bool bf16 = onednn_available() && cpu_has_avx512_bf16();
  for (int round = 0; round < rounds; ++round) {
    for (const auto& s : shapes) {
      const auto M = s.tokens, K = s.in, N = s.out;
      const double flops = 2.0 * double(M) * double(K) * double(N);
      const auto dims = fmt::format("{}x{}x{}", M, K, N);
      auto x = torch::randn({M, K}), w = torch::randn({N, K}), bias = torch::randn({N});
      auto dy = torch::randn({M, N});
      auto y = torch::empty({M, N}), dx = torch::empty({M, K}), dw = torch::empty({N, K});
      // LibTorch: what torch::nn::Linear and its backward call.
      record("forward " + dims, "at::linear",
             rate(flops, seconds, [&] { y = torch::nn::functional::linear(x, w, bias); }));
      record("dX " + dims, "at::linear", rate(flops, seconds, [&] { torch::mm_out(dx, dy, w); }));
      record("dW " + dims, "at::linear",
             rate(flops, seconds, [&] { torch::mm_out(dw, dy.t(), x); }));
      // LibTorch's MKL-DNN op: the input converted to and the output from its layout each call,
      // the weight converted once.
      auto w_mkldnn = w.to_mkldnn();
      record("forward " + dims, "at::mkldnn_linear", rate(flops, seconds, [&] {
               y = at::mkldnn_linear(x.to_mkldnn(), w_mkldnn, bias).to_dense();
             }));
      if (onednn_available()) {
        record("forward " + dims, "oneDNN fp32",
               rate(flops, seconds, [&] { onednn_matmul(x, w.t(), bias, y); }));
        record("dX " + dims, "oneDNN fp32",
               rate(flops, seconds, [&] { onednn_matmul(dy, w, {}, dx); }));
        record("dW " + dims, "oneDNN fp32",
               rate(flops, seconds, [&] { onednn_matmul(dy.t(), x, {}, dw); }));
      }
      if (bf16) {
        auto xb = bf16_copy(x), wb = bf16_copy(w);
        auto dyb = bf16_copy(dy);
        // The bf16 linear layer converts x each call (and W once per step): counted here.
        record("forward " + dims, "oneDNN bf16",
               rate(flops, seconds, [&] { onednn_matmul(bf16_copy(x), wb.t(), bias, y); }));
        record("dX " + dims, "oneDNN bf16",
               rate(flops, seconds, [&] { onednn_matmul(bf16_copy(dy), wb, {}, dx); }));
        record("dW " + dims, "oneDNN bf16",
               rate(flops, seconds, [&] { onednn_matmul(dyb.t(), xb, {}, dw); }));
      }
    }
  }
  return rates;
}

}  // namespace pelab
