// The vectorised float32 -> bf16 converter against LibTorch's own conversion (round to nearest
// even, one value at a time): the same 16 bits for every float32 but denormals, which the
// instruction turns into signed zeros.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/bf16_convert.h"

using namespace pelab;

namespace {

std::vector<uint16_t> converted(const std::vector<float>& values) {
  std::vector<uint16_t> out(values.size(), 0xDEAD);
  kernels::convert_to_bf16(values.data(), out.data(), static_cast<int64_t>(values.size()));
  return out;
}

std::vector<uint16_t> libtorch_bits(const std::vector<float>& values) {
  auto t = torch::from_blob(const_cast<float*>(values.data()), {int64_t(values.size())})
               .to(torch::kBFloat16);
  std::vector<uint16_t> out(values.size());
  std::memcpy(out.data(), t.data_ptr(), out.size() * sizeof(uint16_t));
  return out;
}

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace

TEST(Bf16Convert, RoundsLikeLibTorchToNearestEven) {
  if (!kernels::bf16_converter_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  std::vector<float> values;
  torch::manual_seed(3);
  auto random = torch::randn({5000}) * torch::exp(torch::randn({5000}) * 20);
  for (int64_t i = 0; i < random.numel(); ++i) values.push_back(random[i].item<float>());
  // Exact ties (low 16 bits 0x8000) round to the even neighbour, both ways; just off a tie goes
  // to the nearer one.
  for (uint32_t high : {0x3F80u, 0x3F81u, 0xBF80u, 0xBF81u, 0x7F7Fu})
    for (uint32_t low : {0x8000u, 0x7FFFu, 0x8001u, 0x0000u, 0xFFFFu})
      values.push_back(from_bits(high << 16 | low));
  const float inf = std::numeric_limits<float>::infinity();
  for (float special : {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::max(),
                        std::numeric_limits<float>::min(), -std::numeric_limits<float>::min()})
    values.push_back(special);
  // Every length from 0 to 70 (the 32-value body and the padded tail), over the same values.
  for (size_t n = 0; n <= 70; ++n) {
    const std::vector<float> head(values.begin(), values.begin() + n);
    EXPECT_EQ(converted(head), libtorch_bits(head)) << "length " << n;
  }
  EXPECT_EQ(converted(values), libtorch_bits(values));

  const auto nan = converted({std::numeric_limits<float>::quiet_NaN()})[0];
  EXPECT_EQ(nan & 0x7F80, 0x7F80);  // exponent all ones ...
  EXPECT_NE(nan & 0x007F, 0);       // ... and a mantissa: still a NaN
  // Denormals: signed zeros (LibTorch keeps the largest as the bf16 denormal 0x0001).
  EXPECT_EQ(converted({1e-40f, -1e-40f}), (std::vector<uint16_t>{0x0000, 0x8000}));
}
