// float32 to bf16 for the products of train.precision = "bf16": AVX512_BF16's converter
// (VCVTNEPS2BF16), 16 values per instruction. LibTorch 1.13's .to(torch::kBFloat16) converts one
// value at a time, and in a bf16 step these copies took as long as a third of the products
// themselves (docs/PERFORMANCE.md). Torch-free, like the other kernels.
#pragma once

#include <cstdint>

namespace pelab::kernels {

// Whether this build and CPU have the converter (x86 with AVX512_BF16).
bool bf16_converter_available();

// out[i] = bf16(in[i]) for i < n, rounded to nearest even as LibTorch rounds, NaN to a quiet NaN;
// one difference: float32 denormals (magnitude below 1.2e-38) become a zero of the same sign, as
// the instruction defines. Only where bf16_converter_available().
void convert_to_bf16(const float* in, uint16_t* out, int64_t n);

}  // namespace pelab::kernels
