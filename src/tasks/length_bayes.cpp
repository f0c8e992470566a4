#include "tasks/length_bayes.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace pelab {
namespace {

// P(left + right = s) for s = 0 .. left_max + right_max, as the convolution of two uniforms.
std::vector<double> side_sum_distribution(const TaskConfig& t) {
  const int64_t n_left = t.distance_left_max - t.distance_left_min + 1;
  const int64_t n_right = t.distance_right_max - t.distance_right_min + 1;
  std::vector<double> p(static_cast<size_t>(t.distance_left_max + t.distance_right_max + 1), 0.0);
  for (int64_t left = t.distance_left_min; left <= t.distance_left_max; ++left)
    for (int64_t right = t.distance_right_min; right <= t.distance_right_max; ++right)
      p[static_cast<size_t>(left + right)] += 1.0 / double(n_left * n_right);
  return p;
}

double distance_length_bayes(const TaskConfig& t) {
  const std::vector<double> sides = side_sum_distribution(t);
  const int64_t n_between = t.distance_between_max - t.distance_between_min + 1;
  const int64_t longest = t.distance_left_max + t.distance_between_max + t.distance_right_max + 2;
  double accuracy = 0;
  for (int64_t length = 0; length <= longest; ++length) {
    // Best label for this length: the between value with the largest joint probability.
    double best = 0;
    for (int64_t between = t.distance_between_min; between <= t.distance_between_max; ++between) {
      const int64_t side_sum = length - 2 - between;
      if (side_sum < 0 || side_sum >= static_cast<int64_t>(sides.size())) continue;
      best = std::max(best, sides[static_cast<size_t>(side_sum)] / double(n_between));
    }
    accuracy += best;
  }
  return accuracy;
}

}  // namespace

double length_only_bayes_accuracy(const TaskConfig& task) {
  if (task.name == "distance") return distance_length_bayes(task);
  if (task.name == "count") return 1.0 / double(task.count_max - task.count_min + 1);
  throw ConfigError(fmt::format(
      "task.name: no length-only Bayes accuracy for '{}'; accepted: distance, count", task.name));
}

}  // namespace pelab
