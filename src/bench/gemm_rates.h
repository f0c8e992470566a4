// GEMM rates of the libraries a linear layer can run through, side by side in one process:
// LibTorch's at::linear (OpenBLAS here), LibTorch's at::mkldnn_linear (oneDNN behind
// MKL-DNN-layout tensors, conversions included) and oneDNN's matmul called directly, float32
// and bf16, on the shapes of a training step's products (forward, dX, dW). `pelab bench --gemm`
// prints them; the 1024^3 products are the yardstick of docs/PERFORMANCE.md.
#pragma once

#include <string>
#include <vector>

namespace pelab {

struct GemmRate {
  std::string product;  // "forward 8192x128x128", "dX ...", "dW ..."
  std::string method;   // "at::linear", "at::mkldnn_linear", "oneDNN fp32", "oneDNN bf16"
  double gflop_per_s = 0;
};

// Each product and method timed for at least `seconds`, methods alternating, `rounds` rounds;
// the best round per (product, method).
std::vector<GemmRate> gemm_rates(double seconds, int rounds);

// 2 * 1024^3 FLOP / time of one oneDNN matmul, float32 or bf16 operands (0 when this build or
// CPU cannot run it), timed for at least `seconds`.
double onednn_matmul_gflop_per_s(bool bf16, double seconds);

}  // namespace pelab
