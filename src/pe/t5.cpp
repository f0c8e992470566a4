// t5: T5's bucketed relative bias (Raffel et al. 2020), one learned scalar per bucket, head and
// layer: B^(l)_{h,i,j} = b^(l)_h[bucket(j - i)]. With n = |j - i| (bidirectional: half the
// buckets for j > i) or n = max(i - j, 0) (causal), and N buckets left after the direction split:
//   bucket = n                                                    if n < N/2 (exact buckets)
//   bucket = min(N-1, N/2 + floor(log(n / (N/2)) / log(max_distance / (N/2)) * (N - N/2)))
// Bidirectional unless model.mask = causal. Keys: model.t5_num_buckets, model.t5_max_distance.
#include "pe/t5.h"

#include <fmt/format.h>

#include <cmath>

#include "pe/bias_table.h"
#include "pe/pe.h"

namespace pelab {

int64_t t5_relative_position_bucket(int64_t relative_position, bool bidirectional,
                                    int64_t num_buckets, int64_t max_distance) {
  int64_t bucket = 0;
  int64_t n = 0;
  if (bidirectional) {
    num_buckets /= 2;
    if (relative_position > 0) bucket += num_buckets;
    n = std::abs(relative_position);
  } else {
    n = std::max<int64_t>(-relative_position, 0);
  }
  const int64_t max_exact = num_buckets / 2;
  if (n < max_exact) return bucket + n;
  // float32 as in the reference implementation, so bucket edges agree exactly.
  const float scaled = std::log(float(n) / float(max_exact)) /
                       float(std::log(double(max_distance) / double(max_exact))) *
                       float(num_buckets - max_exact);
  const int64_t large = std::min<int64_t>(max_exact + int64_t(scaled), num_buckets - 1);
  return bucket + large;
}

namespace {

class T5Bias : public PositionalEncoding {
 public:
  explicit T5Bias(const PeOptions& o)
      : bidirectional_(o.model.mask != "causal"),
        num_buckets_(o.model.t5_num_buckets),
        max_distance_(o.model.t5_max_distance) {
    const int64_t per_direction = bidirectional_ ? num_buckets_ / 2 : num_buckets_;
    // Bidirectional T5 splits the buckets in two halves (Hugging Face floors an odd count,
    // leaving the last bucket unused; we refuse it instead).
    if (per_direction < 2 || (bidirectional_ && num_buckets_ % 2 != 0))
      throw ConfigError(fmt::format(
          "model.t5_num_buckets: bad value {}; accepted: {}", num_buckets_,
          bidirectional_ ? "an even number >= 4 (bidirectional)" : "a number >= 2 (causal)"));
    if (max_distance_ <= per_direction / 2)
      throw ConfigError(fmt::format(
          "model.t5_max_distance: bad value {}; accepted: more than {} (half the buckets of one "
          "direction)",
          max_distance_, per_direction / 2));
    table_ = register_parameter("table",
                                torch::zeros({o.model.n_layers, o.model.n_heads, num_buckets_}));
  }
  std::string name() const override { return "t5"; }
  PeKind kind() const override { return PeKind::kBias; }
  torch::Tensor bias(int64_t length, int64_t layer) const override {
    return lookup_bias(table_[layer], bucket_index(length));
  }
  torch::Tensor kernel(int64_t n, int64_t layer) const override {
    torch::NoGradGuard no_grad;
    return bias(n, layer).to(torch::kDouble);
  }

 private:
  // [L, L] buckets of j - i; cached because every layer and step asks for the same length.
  torch::Tensor bucket_index(int64_t length) const {
    if (cached_index_.defined() && cached_index_.size(0) == length) return cached_index_;
    std::vector<int64_t> index(length * length);
    for (int64_t i = 0; i < length; ++i)
      for (int64_t j = 0; j < length; ++j)
        index[i * length + j] =
            t5_relative_position_bucket(j - i, bidirectional_, num_buckets_, max_distance_);
    cached_index_ = torch::tensor(index, torch::kLong).view({length, length});
    return cached_index_;
  }

  bool bidirectional_;
  int64_t num_buckets_, max_distance_;
  torch::Tensor table_;
  mutable torch::Tensor cached_index_;
};

}  // namespace

PositionalEncodingPtr make_t5(const PeOptions& o) { return std::make_shared<T5Bias>(o); }

}  // namespace pelab
