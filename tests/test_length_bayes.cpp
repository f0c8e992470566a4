// Length-only Bayes accuracy (tasks/length_bayes.h) against a brute-force count over every
// (left, between, right) draw, against the generator's own samples, and against the paper's
// Task 1 figure (PAPER.md section 7: about 0.054).
#include <gtest/gtest.h>

#include <map>

#include "tasks/length_bayes.h"
#include "tasks/task.h"

using namespace pelab;

namespace {

TaskConfig distance_task(int64_t left_min, int64_t left_max, int64_t between_min,
                         int64_t between_max, int64_t right_min, int64_t right_max) {
  TaskConfig t;
  t.name = "distance";
  t.vocab_size = 16;
  t.distance_left_min = left_min;
  t.distance_left_max = left_max;
  t.distance_between_min = between_min;
  t.distance_between_max = between_max;
  t.distance_right_min = right_min;
  t.distance_right_max = right_max;
  t.seq_len = left_max + between_max + right_max + 2;
  return t;
}

// Counts the equally likely draws per (length, label), then sums each length's largest count.
double brute_force(const TaskConfig& t) {
  std::map<std::pair<int64_t, int64_t>, int64_t> count;
  int64_t draws = 0;
  for (int64_t l = t.distance_left_min; l <= t.distance_left_max; ++l)
    for (int64_t b = t.distance_between_min; b <= t.distance_between_max; ++b)
      for (int64_t r = t.distance_right_min; r <= t.distance_right_max; ++r) {
        ++count[{l + b + r + 2, b + 1}];
        ++draws;
      }
  std::map<int64_t, int64_t> best;
  for (const auto& [key, n] : count) best[key.first] = std::max(best[key.first], n);
  int64_t correct = 0;
  for (const auto& [length, n] : best) correct += n;
  return double(correct) / double(draws);
}

}  // namespace

TEST(LengthBayes, DistanceMatchesABruteForceCount) {
  for (const auto& t : {distance_task(0, 2, 1, 3, 1, 2), distance_task(1, 1, 1, 5, 1, 1),
                        distance_task(1, 4, 2, 9, 0, 3), distance_task(1, 8, 1, 24, 1, 8)})
    EXPECT_NEAR(length_only_bayes_accuracy(t), brute_force(t), 1e-12);
  // Fixed sides: the length gives the label away.
  EXPECT_NEAR(length_only_bayes_accuracy(distance_task(2, 2, 1, 9, 3, 3)), 1.0, 1e-12);
}

TEST(LengthBayes, DistanceMatchesTheGeneratorsSamples) {
  // The plug-in Bayes accuracy of 200,000 generated sequences (both filler rules) is within
  // sampling error of the exact value.
  for (bool fillers_may_be_triggers : {false, true}) {
    TaskConfig t = distance_task(0, 2, 1, 4, 1, 3);
    t.samples = 200000;
    t.fillers_may_be_triggers = fillers_may_be_triggers;
    const Dataset d = generate_task(t);
    std::map<std::pair<int64_t, int64_t>, int64_t> count;
    const int64_t* lengths = d.lengths.data_ptr<int64_t>();
    const int64_t* labels = d.labels.data_ptr<int64_t>();
    for (int64_t i = 0; i < d.size(); ++i) ++count[{lengths[i], labels[i]}];
    std::map<int64_t, int64_t> best;
    for (const auto& [key, n] : count) best[key.first] = std::max(best[key.first], n);
    int64_t correct = 0;
    for (const auto& [length, n] : best) correct += n;
    EXPECT_NEAR(double(correct) / double(t.samples), length_only_bayes_accuracy(t), 0.005);
  }
}

TEST(LengthBayes, PaperTask1AndCountTask) {
  // The paper's Task 1 (sides 1..25, between 1..70): PAPER.md section 7 gives about 0.054.
  EXPECT_NEAR(length_only_bayes_accuracy(distance_task(1, 25, 1, 70, 1, 25)), 0.0537, 5e-4);
  TaskConfig count;
  count.name = "count";
  count.count_min = 0;
  count.count_max = 30;
  EXPECT_DOUBLE_EQ(length_only_bayes_accuracy(count), 1.0 / 31.0);
  TaskConfig unknown;
  unknown.name = "parity";
  EXPECT_THROW(length_only_bayes_accuracy(unknown), ConfigError);
}
