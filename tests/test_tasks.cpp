// The synthetic task generators (PAPER.md section 4): labels recomputed from the tokens, segment
// lengths, padding, determinism, the split and config validation.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>

#include "tasks/task.h"

namespace pelab {
namespace {

TaskConfig distance_config(int64_t samples = 2000) {
  TaskConfig t;
  t.name = "distance";
  t.samples = samples;
  return t;
}

TaskConfig count_config(int64_t samples = 2000) {
  TaskConfig t;
  t.name = "count";
  t.samples = samples;
  return t;
}

// Expects `fn` to throw ConfigError whose message contains `key`.
template <typename Fn>
void expect_config_error(Fn fn, const std::string& key) {
  try {
    fn();
    ADD_FAILURE() << "no ConfigError for " << key;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

void expect_shapes_and_padding(const Dataset& d, const TaskConfig& t) {
  ASSERT_EQ(d.tokens.sizes(), (std::vector<int64_t>{t.samples, t.seq_len}));
  ASSERT_EQ(d.lengths.sizes(), (std::vector<int64_t>{t.samples}));
  ASSERT_EQ(d.labels.sizes(), (std::vector<int64_t>{t.samples}));
  EXPECT_EQ(d.tokens.scalar_type(), torch::kInt64);
  EXPECT_EQ(d.lengths.scalar_type(), torch::kInt64);
  EXPECT_EQ(d.labels.scalar_type(), torch::kInt64);
  // Positions >= length are pads; positions < length are not, so length == non-pad count.
  const auto pos = torch::arange(t.seq_len).unsqueeze(0);
  const auto valid = pos < d.lengths.unsqueeze(1);
  EXPECT_TRUE(d.tokens.masked_select(valid.logical_not()).eq(kPadToken).all().item<bool>());
  EXPECT_TRUE(d.tokens.masked_select(valid).ne(kPadToken).all().item<bool>());
  EXPECT_TRUE(d.tokens.ne(kPadToken).sum(1).equal(d.lengths));
  EXPECT_LT(d.tokens.max().item<int64_t>(), t.vocab_size);
  EXPECT_GE(d.labels.min().item<int64_t>(), 0);
  EXPECT_LT(d.labels.max().item<int64_t>(), num_classes(t));
}

TEST(DistanceTask, LabelsSegmentsAndPadding) {
  const TaskConfig t = distance_config();
  const Dataset d = generate_task(t);
  expect_shapes_and_padding(d, t);
  EXPECT_EQ(trigger_tokens(t), (std::vector<int64_t>{1, 2}));
  auto tok = d.tokens.accessor<int64_t, 2>();
  std::set<int64_t> seen_labels;
  for (int64_t i = 0; i < t.samples; ++i) {
    const int64_t len = d.lengths[i].item<int64_t>();
    int64_t pos1 = -1, pos2 = -1, n1 = 0, n2 = 0;
    for (int64_t p = 0; p < len; ++p) {
      if (tok[i][p] == 1) pos1 = p, ++n1;
      if (tok[i][p] == 2) pos2 = p, ++n2;
    }
    ASSERT_EQ(n1, 1) << "row " << i;
    ASSERT_EQ(n2, 1) << "row " << i;
    const int64_t left = pos1, between = pos2 - pos1 - 1, right = len - pos2 - 1;
    ASSERT_EQ(d.labels[i].item<int64_t>(), pos2 - pos1) << "row " << i;
    EXPECT_GE(left, t.distance_left_min);
    EXPECT_LE(left, t.distance_left_max);
    EXPECT_GE(between, t.distance_between_min);
    EXPECT_LE(between, t.distance_between_max);
    EXPECT_GE(right, t.distance_right_min);
    EXPECT_LE(right, t.distance_right_max);
    seen_labels.insert(pos2 - pos1);
  }
  // 2000 samples over 70 labels: every label 2..71 should occur.
  EXPECT_EQ(static_cast<int64_t>(seen_labels.size()), t.distance_between_max);
  EXPECT_EQ(*seen_labels.begin(), 2);
  EXPECT_EQ(*seen_labels.rbegin(), 71);
}

TEST(CountTask, LabelsLengthsAndPadding) {
  const TaskConfig t = count_config();
  const Dataset d = generate_task(t);
  expect_shapes_and_padding(d, t);
  EXPECT_EQ(trigger_tokens(t).size(), static_cast<size_t>(t.count_triggers));
  EXPECT_TRUE(d.lengths.eq(t.count_length).all().item<bool>());
  const auto is_trigger = d.tokens.ge(1).logical_and(d.tokens.le(t.count_triggers));
  EXPECT_TRUE(is_trigger.sum(1).equal(d.labels));
  EXPECT_GE(d.labels.min().item<int64_t>(), t.count_min);
  EXPECT_LE(d.labels.max().item<int64_t>(), t.count_max);
  EXPECT_EQ(d.labels.min().item<int64_t>(), 0);  // 2000 draws over 101 values
  EXPECT_EQ(d.labels.max().item<int64_t>(), 100);
  // Triggers are not bunched at the front: the shuffle spreads them over the sequence.
  const auto last_quarter = is_trigger.slice(1, 90, 120).sum().item<int64_t>();
  EXPECT_GT(last_quarter, d.labels.sum().item<int64_t>() / 8);
}

TEST(Tasks, DeterministicInSeed) {
  for (const TaskConfig& base : {distance_config(500), count_config(500)}) {
    TaskConfig t = base;
    const Dataset a = generate_task(t);
    const Dataset b = generate_task(t);
    EXPECT_TRUE(a.tokens.equal(b.tokens));
    EXPECT_TRUE(a.lengths.equal(b.lengths));
    EXPECT_TRUE(a.labels.equal(b.labels));
    t.seed = 1;
    const Dataset c = generate_task(t);
    EXPECT_FALSE(a.tokens.equal(c.tokens));
    EXPECT_FALSE(a.labels.equal(c.labels));
  }
}

TEST(Tasks, SplitSizesDisjointAndDeterministic) {
  TaskConfig t = distance_config(1000);
  const Dataset d = generate_task(t);
  // Tag each row with its index: a copy whose first token is the row id.
  Dataset tagged = d;
  tagged.tokens = d.tokens.clone();
  tagged.tokens.select(1, 0).copy_(torch::arange(t.samples));
  const DatasetSplit s = split_dataset(tagged, t);
  EXPECT_EQ(s.train.size(), 700);
  EXPECT_EQ(s.test.size(), 300);
  std::set<int64_t> rows;
  for (const Dataset* part : {&s.train, &s.test}) {
    for (int64_t i = 0; i < part->size(); ++i) {
      const int64_t r = part->tokens[i][0].item<int64_t>();
      EXPECT_TRUE(rows.insert(r).second) << "row " << r << " twice";
      // Lengths and labels travel with their row.
      EXPECT_EQ(part->labels[i].item<int64_t>(), d.labels[r].item<int64_t>());
      EXPECT_EQ(part->lengths[i].item<int64_t>(), d.lengths[r].item<int64_t>());
      EXPECT_TRUE(part->tokens[i].slice(0, 1).equal(d.tokens[r].slice(0, 1)));
    }
  }
  EXPECT_EQ(static_cast<int64_t>(rows.size()), t.samples);
  // Not the identity order.
  EXPECT_FALSE(s.train.tokens.select(1, 0).equal(torch::arange(700)));

  const DatasetSplit again = split_dataset(tagged, t);
  EXPECT_TRUE(again.train.tokens.equal(s.train.tokens));
  EXPECT_TRUE(again.test.tokens.equal(s.test.tokens));
  t.split_seed = 7;
  const DatasetSplit other = split_dataset(tagged, t);
  EXPECT_FALSE(other.train.tokens.equal(s.train.tokens));
}

TEST(Tasks, SplitValidation) {
  TaskConfig t = distance_config(10);
  const Dataset d = generate_task(t);
  t.train_fraction = 1.0;
  expect_config_error([&] { split_dataset(d, t); }, "task.train_fraction");
  t.train_fraction = 0.0;
  expect_config_error([&] { split_dataset(d, t); }, "task.train_fraction");
  t.train_fraction = 0.99;  // rounds to 10 of 10: empty test set
  expect_config_error([&] { split_dataset(d, t); }, "task.train_fraction");
}

TEST(Tasks, AuthorsFillersMayBeTriggers) {
  TaskConfig t = distance_config(5000);
  t.vocab_size = 50;  // triggers are 2 of 49 filler choices: many rows get extra copies
  t.fillers_may_be_triggers = true;
  Dataset d = generate_task(t);
  const auto triggers_per_row = d.tokens.eq(1).logical_or(d.tokens.eq(2)).sum(1);
  EXPECT_TRUE(triggers_per_row.ge(2).all().item<bool>());
  EXPECT_GT(triggers_per_row.gt(2).sum().item<int64_t>(), 100);
  t.fillers_may_be_triggers = false;
  d = generate_task(t);
  EXPECT_TRUE(d.tokens.eq(1).logical_or(d.tokens.eq(2)).sum(1).eq(2).all().item<bool>());

  TaskConfig c = count_config(2000);
  c.fillers_may_be_triggers = true;
  d = generate_task(c);
  const auto counted = d.tokens.ge(1).logical_and(d.tokens.le(c.count_triggers)).sum(1);
  EXPECT_TRUE(counted.ge(d.labels).all().item<bool>());  // labels = planted triggers only
  EXPECT_GT(counted.gt(d.labels).sum().item<int64_t>(), 100);
}

TEST(Tasks, GenerationIsFast) {
  TaskConfig t = distance_config(100000);
  const auto start = std::chrono::steady_clock::now();
  const Dataset d = generate_task(t);
  t.name = "count";
  const Dataset c = generate_task(t);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(d.size() + c.size(), 200000);
  EXPECT_LT(s, 5.0);  // ~0.2 s on one core at -O1; generous for loaded machines
}

TEST(Tasks, BadConfigsNameTheKey) {
  TaskConfig t = distance_config(10);
  t.distance_between_max = 120;  // 25 + 120 + 25 + 2 > 128
  expect_config_error([&] { generate_task(t); }, "distance_between_max");
  t = distance_config(10);
  t.distance_left_min = 30;  // > left_max = 25
  expect_config_error([&] { generate_task(t); }, "distance_left_max");
  t = distance_config(10);
  t.distance_right_min = -1;
  expect_config_error([&] { generate_task(t); }, "distance_right_min");
  t = distance_config(10);
  t.vocab_size = 3;
  expect_config_error([&] { generate_task(t); }, "task.vocab_size");
  t = distance_config(10);
  t.name = "sort";
  expect_config_error([&] { generate_task(t); }, "task.name");
  expect_config_error([&] { trigger_tokens(t); }, "task.name");
  t = distance_config(0);
  expect_config_error([&] { generate_task(t); }, "task.samples");

  TaskConfig c = count_config(10);
  c.vocab_size = 21;  // triggers 1..20 leave no filler token
  expect_config_error([&] { generate_task(c); }, "task.vocab_size");
  c = count_config(10);
  c.count_max = 130;  // > count_length = 120
  expect_config_error([&] { generate_task(c); }, "task.count_max");
  c = count_config(10);
  c.count_length = 200;  // > seq_len
  expect_config_error([&] { generate_task(c); }, "count_length");
  c = count_config(10);
  c.count_min = 50;
  c.count_max = 40;
  expect_config_error([&] { generate_task(c); }, "count_max");
  c = count_config(10);
  c.count_triggers = 0;
  expect_config_error([&] { generate_task(c); }, "count_triggers");
}

TEST(Tasks, UniformIntCoversRangeEvenly) {
  std::mt19937_64 rng(3);
  std::vector<int64_t> hist(7, 0);
  for (int i = 0; i < 70000; ++i) ++hist[uniform_int(rng, -3, 3) + 3];
  for (int64_t h : hist) EXPECT_NEAR(h, 10000, 500);
  EXPECT_EQ(uniform_int(rng, 5, 5), 5);
  // Fixed values: the draws are part of the reproducibility contract (mt19937_64's output is
  // specified by the standard, and uniform_int is ours), so they are the same everywhere.
  std::mt19937_64 a(0);
  EXPECT_EQ(uniform_int(a, 0, 999), 159);
  EXPECT_EQ(uniform_int(a, 0, 999), 992);
  EXPECT_EQ(uniform_int(a, -5, 5), -5);
}

}  // namespace
}  // namespace pelab
