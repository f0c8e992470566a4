// Row selection, the seeded train/test split and the portable random draws shared
// by the generators.
#include <cmath>
#include <numeric>
#include <sstream>

#include "tasks/task.h"

namespace pelab {

Dataset Dataset::index(const torch::Tensor& rows) const {
  const torch::Tensor r = rows.to(torch::kInt64);
  return Dataset{tokens.index_select(0, r), lengths.index_select(0, r), labels.index_select(0, r)};
}

DatasetSplit split_dataset(const Dataset& all, const TaskConfig& task) {
  const double f = task.train_fraction;
  if (!(f > 0.0 && f < 1.0)) {  // also rejects NaN
    std::ostringstream msg;
    msg << "task.train_fraction: invalid value " << f << "; accepted: a number in (0, 1)";
    throw ConfigError(msg.str());
  }
  const int64_t n = all.size();
  const auto n_train = static_cast<int64_t>(std::llround(f * static_cast<double>(n)));
  if (n_train < 1 || n_train > n - 1) {
    std::ostringstream msg;
    msg << "task.train_fraction: value " << f << " with task.samples = " << n << " gives "
        << n_train << " training and " << (n - n_train)
        << " test rows; accepted: a fraction leaving both sets non-empty";
    throw ConfigError(msg.str());
  }
  torch::Tensor perm = torch::arange(n, torch::kInt64);
  std::mt19937_64 rng(static_cast<uint64_t>(task.split_seed));
  shuffle_in_place(rng, perm.data_ptr<int64_t>(), n);
  return DatasetSplit{all.index(perm.slice(0, 0, n_train)), all.index(perm.slice(0, n_train, n))};
}

int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  // Lemire, "Fast Random Integer Generation in an Interval" (2019): the high 64 bits of x * s are
  // uniform in [0, s) once the few x whose low product bits fall below 2^64 mod s are rejected.
  __extension__ using u128 = unsigned __int128;
  const uint64_t s = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) + 1;
  if (s == 0) return static_cast<int64_t>(rng());  // the full 64-bit range
  u128 m = static_cast<u128>(rng()) * s;
  auto low = static_cast<uint64_t>(m);
  if (low < s) {
    const uint64_t threshold = (0 - s) % s;  // 2^64 mod s
    while (low < threshold) {
      m = static_cast<u128>(rng()) * s;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<int64_t>(static_cast<uint64_t>(lo) + static_cast<uint64_t>(m >> 64));
}

void shuffle_in_place(std::mt19937_64& rng, int64_t* values, int64_t n) {
  for (int64_t i = n - 1; i > 0; --i) std::swap(values[i], values[uniform_int(rng, 0, i)]);
}

}  // namespace pelab
