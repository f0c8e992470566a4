// Probe tasks (labels recomputed from the tokens), lengthened tasks (label ranges kept, the
// extra length in fillers) and models rebuilt at longer lengths (weights carried over, position
// tables refused or clamped).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "analysis/length_generalization.h"
#include "fixtures.h"
#include "tasks/task.h"

namespace pelab {
namespace {

TaskConfig probe_config(const std::string& name, int64_t samples = 1500) {
  TaskConfig t;
  t.name = name;
  t.samples = samples;
  t.seq_len = 32;
  t.vocab_size = 64;
  t.seed = 7;
  return t;
}

// Every row: the padding starts at lengths[i] and no earlier; tokens below vocab_size.
void expect_padding(const Dataset& d, const TaskConfig& t) {
  ASSERT_EQ(d.tokens.sizes(), (std::vector<int64_t>{t.samples, t.seq_len}));
  const auto valid = torch::arange(t.seq_len).unsqueeze(0) < d.lengths.unsqueeze(1);
  EXPECT_TRUE(d.tokens.masked_select(valid.logical_not()).eq(kPadToken).all().item<bool>());
  EXPECT_TRUE(d.tokens.masked_select(valid).ne(kPadToken).all().item<bool>());
  EXPECT_LT(d.tokens.max().item<int64_t>(), t.vocab_size);
}

// recall: label = value after the queried key's earlier occurrence, recomputed from the tokens.
std::vector<int64_t> recall_labels(const Dataset& d, const TaskConfig& t) {
  std::vector<int64_t> out;
  const int64_t first_value = 2 + t.recall_keys;
  for (int64_t i = 0; i < d.size(); ++i) {
    const auto row = d.tokens[i];
    const int64_t len = d.lengths[i].item<int64_t>();
    EXPECT_EQ(row[len - 2].item<int64_t>(), 1);  // the query marker
    const int64_t key = row[len - 1].item<int64_t>();
    int64_t found = -1, keys_seen = 0;
    for (int64_t p = 0; p < len - 2; ++p) {
      const int64_t tok = row[p].item<int64_t>();
      if (tok >= 2 && tok < first_value) {
        ++keys_seen;
        if (tok == key) {
          EXPECT_EQ(found, -1) << "key repeated in row " << i;
          found = row[p + 1].item<int64_t>() - first_value;
        }
      }
    }
    EXPECT_EQ(keys_seen, t.recall_pairs);
    out.push_back(found);
  }
  return out;
}

std::vector<int64_t> first_labels(const Dataset& d) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < d.size(); ++i) {
    int64_t p = 0;
    while (d.tokens[i][p].item<int64_t>() != 1) ++p;
    out.push_back(p);
  }
  return out;
}

std::vector<int64_t> order_labels(const Dataset& d) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < d.size(); ++i) {
    const auto row = d.tokens[i];
    EXPECT_EQ(row.eq(1).sum().item<int64_t>(), 1);
    EXPECT_EQ(row.eq(2).sum().item<int64_t>(), 1);
    const int64_t a = row.eq(1).nonzero()[0][0].item<int64_t>();
    const int64_t b = row.eq(2).nonzero()[0][0].item<int64_t>();
    out.push_back(a < b ? 0 : 1);
  }
  return out;
}

std::vector<int64_t> offset_labels(const Dataset& d, const TaskConfig& t) {
  std::vector<int64_t> out;
  const int64_t markers = t.offset_max - t.offset_min + 1, first_content = 2 + markers;
  for (int64_t i = 0; i < d.size(); ++i) {
    const auto row = d.tokens[i];
    EXPECT_EQ(row.eq(1).sum().item<int64_t>(), 1);
    const auto is_marker = row.ge(2).logical_and(row.lt(first_content));
    EXPECT_EQ(is_marker.sum().item<int64_t>(), 1);
    const int64_t trigger = row.eq(1).nonzero()[0][0].item<int64_t>();
    const int64_t marker = row.masked_select(is_marker)[0].item<int64_t>();
    const int64_t target = trigger + (marker - 2 + t.offset_min);
    EXPECT_GE(row[target].item<int64_t>(), first_content);
    out.push_back(row[target].item<int64_t>() - first_content);
  }
  return out;
}

std::vector<int64_t> labels_of(const Dataset& d) {
  return std::vector<int64_t>(d.labels.data_ptr<int64_t>(),
                              d.labels.data_ptr<int64_t>() + d.size());
}

// Labels recomputed from the tokens by the probe's own rule, at the training length and longer.
std::vector<int64_t> recomputed(const Dataset& d, const TaskConfig& t) {
  if (t.name == "recall") return recall_labels(d, t);
  if (t.name == "first") return first_labels(d);
  if (t.name == "order") return order_labels(d);
  return offset_labels(d, t);
}

class Probe : public ::testing::TestWithParam<std::string> {};

TEST_P(Probe, LabelsRecomputedFromTokensAtTrainingAndLongerLengths) {
  const TaskConfig t = probe_config(GetParam());
  for (const int64_t length : {32, 80}) {
    const TaskConfig lt = lengthen_task(t, length);
    const Dataset d = generate_task(lt);
    expect_padding(d, lt);
    EXPECT_EQ(recomputed(d, lt), labels_of(d)) << GetParam() << " at " << length;
    // The label range stays: every class of the training length and nothing beyond.
    EXPECT_EQ(num_classes(lt), num_classes(t));
    const auto labels = labels_of(d);
    const std::set<int64_t> seen(labels.begin(), labels.end());
    EXPECT_EQ(
        static_cast<int64_t>(seen.size()),
        GetParam() == "first" ? t.first_position_max - t.first_position_min + 1 : num_classes(t));
    // The extra length went into the sequences.
    EXPECT_EQ(d.lengths.max().item<int64_t>() - generate_task(t).lengths.max().item<int64_t>(),
              length - 32);
  }
}

TEST_P(Probe, DeterministicInSeedAndDifferentAcrossSeeds) {
  TaskConfig t = probe_config(GetParam(), 200);
  const Dataset a = generate_task(t), b = generate_task(t);
  EXPECT_TRUE(a.tokens.equal(b.tokens));
  EXPECT_TRUE(a.labels.equal(b.labels));
  t.seed = 8;
  EXPECT_FALSE(generate_task(t).tokens.equal(a.tokens));
}

INSTANTIATE_TEST_SUITE_P(Tasks, Probe, ::testing::Values("recall", "first", "order", "offset"));

// Expects ConfigError whose message contains every one of `parts`.
template <typename Fn>
void expect_error_naming(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(ProbeTasks, BadParametersNameTheKey) {
  TaskConfig t = probe_config("recall");
  t.recall_pairs = 20;  // more than the 16 keys
  expect_error_naming([&] { generate_task(t); }, {"task.recall_pairs", "recall_keys"});
  t = probe_config("recall");
  t.vocab_size = 20;
  expect_error_naming([&] { generate_task(t); }, {"task.vocab_size"});
  t = probe_config("first");
  t.first_position_max = 30;  // beyond first_length 24
  expect_error_naming([&] { generate_task(t); }, {"task.first_position_max", "first_length"});
  t = probe_config("order");
  t.order_length = 40;
  expect_error_naming([&] { generate_task(t); }, {"task.order_length", "seq_len"});
  t = probe_config("offset");
  t.offset_max = 30;
  expect_error_naming([&] { generate_task(t); }, {"task.offset_length"});
  t = probe_config("offset");
  t.vocab_size = 10;
  expect_error_naming([&] { generate_task(t); }, {"task.vocab_size", "14"});
  expect_error_naming([&] { lengthen_task(probe_config("order"), 16); },
                      {"16", "task.seq_len = 32"});
  t.name = "nosuch";
  expect_error_naming([&] { generate_task(t); }, {"nosuch", "recall", "offset"});
}

// Task 1 at a longer length: the distance (w2 - w1) keeps its range, the margins take the rest.
TEST(LengthenedTasks, DistanceKeepsTheDistanceRangeAndWidensTheMargins) {
  TaskConfig t;
  t.samples = 3000;
  const int64_t extra = 64;
  const TaskConfig lt = lengthen_task(t, t.seq_len + extra);
  const Dataset d = generate_task(lt);
  int64_t min_left = 1 << 20, min_right = 1 << 20;
  std::set<int64_t> distances;
  for (int64_t i = 0; i < d.size(); ++i) {
    const auto row = d.tokens[i];
    const int64_t w1 = row.eq(1).nonzero()[0][0].item<int64_t>();
    const int64_t w2 = row.eq(2).nonzero()[0][0].item<int64_t>();
    ASSERT_EQ(w2 - w1, d.labels[i].item<int64_t>());
    distances.insert(w2 - w1);
    min_left = std::min(min_left, w1);
    min_right = std::min(min_right, d.lengths[i].item<int64_t>() - 1 - w2);
  }
  EXPECT_EQ(*distances.begin(), t.distance_between_min + 1);
  EXPECT_EQ(*distances.rbegin(), t.distance_between_max + 1);
  EXPECT_EQ(min_left, t.distance_left_min + extra / 2);
  EXPECT_EQ(min_right, t.distance_right_min + extra - extra / 2);
  EXPECT_LE(d.lengths.max().item<int64_t>(), lt.seq_len);
  EXPECT_EQ(num_classes(lt), num_classes(t));
}

// Task 2 at a longer length: the count of triggers keeps its range; the rest are fillers.
TEST(LengthenedTasks, CountKeepsTheCountRange) {
  TaskConfig t;
  t.name = "count";
  t.samples = 3000;
  const TaskConfig lt = lengthen_task(t, 200);
  const Dataset d = generate_task(lt);
  const auto triggers = d.tokens.ge(1).logical_and(d.tokens.le(t.count_triggers)).sum(1);
  EXPECT_TRUE(triggers.equal(d.labels));
  EXPECT_EQ(d.labels.min().item<int64_t>(), t.count_min);
  EXPECT_EQ(d.labels.max().item<int64_t>(), t.count_max);
  EXPECT_TRUE(d.lengths.eq(t.count_length + 200 - t.seq_len).all().item<bool>());
}

Config tiny_config(const std::string& pe) {
  return load_config(std::string(PELAB_SOURCE_DIR) + "/configs/tiny.toml",
                     {"model.pe=" + pe, "task.samples=96", "train.threads=1"});
}

// The rebuilt model carries every weight: a sequence padded to the longer length gives the same
// logits as padded to the training length (padding mask, pooling over valid tokens), every PE.
TEST(ModelAtLength, EveryPeGivesTheSameLogitsOnTheSameTokens) {
  configure_threads(1);
  for (const auto& pe : pe_names()) {
    auto trained = test_fixtures::briefly_trained(pe, {}, 3);
    const Config longer = config_at_length(trained.config, {}, 48);
    Transformer model = model_at_length(trained.model, longer, 32, /*clamp_positions=*/true);
    trained.model->eval();
    torch::NoGradGuard no_grad;
    const auto tokens = trained.data.tokens.slice(0, 0, 8);
    const auto lengths = trained.data.lengths.slice(0, 0, 8);
    const auto padded = torch::constant_pad_nd(tokens, {0, 16}, kPadToken);
    const auto a = trained.model->forward(tokens, lengths);
    const auto b = model->forward(padded, lengths);
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5)) << pe;
  }
}

TEST(ModelAtLength, PositionTablesAreRefusedNamingThePeAndTheLongestLength) {
  for (const std::string pe : {"learned", "relative"}) {
    auto trained = test_fixtures::briefly_trained(pe, {}, 1);
    EXPECT_EQ(longest_supported_length(trained.config), 32) << pe;
    const Config longer = config_at_length(trained.config, {}, 33);
    expect_error_naming(
        [&] { model_at_length(trained.model, longer, 32, false); },
        {"model.pe = " + pe, "longest length it supports is 32", "--clamp-positions"});
  }
  for (const std::string pe : {"nope", "sinusoidal", "t5", "alibi", "rope", "rope_abs", "mla"})
    EXPECT_EQ(longest_supported_length(tiny_config(pe)), -1) << pe;
}

// Clamping: positions beyond the learned table reuse its last row; offsets beyond +-(L-1) reuse
// the edge biases. Checked against the trained tables directly.
TEST(ModelAtLength, ClampingRepeatsTheLastLearnedPosition) {
  auto learned = test_fixtures::briefly_trained("learned", {}, 2);
  auto relative = test_fixtures::briefly_trained("relative", {}, 5);
  torch::NoGradGuard no_grad;
  Transformer a =
      model_at_length(learned.model, config_at_length(learned.config, {}, 50), 32, true);
  const auto table = learned.model->pe->embedding(32);
  const auto extended = a->pe->embedding(50);
  EXPECT_TRUE(extended.slice(0, 0, 32).equal(table));
  for (int64_t p = 32; p < 50; ++p) EXPECT_TRUE(extended[p].equal(table[31])) << p;

  Transformer b =
      model_at_length(relative.model, config_at_length(relative.config, {}, 40), 32, true);
  for (int64_t layer = 0; layer < 2; ++layer) {
    const auto old_bias = relative.model->pe->bias(32, layer);  // [H, 32, 32]
    const auto new_bias = b->pe->bias(40, layer);
    ASSERT_GT(old_bias.abs().max().item<double>(), 0.0);  // trained, not the zero init
    for (int64_t i = 0; i < 40; i += 3)
      for (int64_t j = 0; j < 40; j += 5) {
        const int64_t offset = std::clamp<int64_t>(i - j, -31, 31);
        const int64_t i0 = offset >= 0 ? offset : 0, j0 = offset >= 0 ? 0 : -offset;
        EXPECT_TRUE(new_bias.select(1, i).select(1, j).equal(old_bias.select(1, i0).select(1, j0)))
            << layer << " " << i << " " << j;
      }
  }
}

// At the training length the evaluation is the plain one; the accuracy is per length.
TEST(EvaluateLengths, TrainingLengthEqualsThePlainEvaluation) {
  configure_threads(1);
  auto trained = test_fixtures::briefly_trained("alibi", {"task.samples=200"}, 10);
  TrainState state{trained.config, trained.model, nullptr, 0, 0, {}};
  LengthOptions options;
  options.lengths = {32, 64};
  const LengthResult r = evaluate_lengths(state, options);
  ASSERT_EQ(r.points.size(), 2u);
  const auto plain =
      evaluate(trained.model, select_split(make_split(trained.config.task), "test"), 64);
  EXPECT_DOUBLE_EQ(r.points[0].accuracy, plain.accuracy);
  EXPECT_EQ(r.points[1].length, 64);
  EXPECT_EQ(r.points[1].samples, plain.samples);
  const auto back = length_result_from_json(length_result_to_json(r));
  EXPECT_DOUBLE_EQ(accuracy_at(back, 64), r.points[1].accuracy);
  EXPECT_EQ(lengths_for_factors({1, 1.5, 2, 3, 4}, 48),
            (std::vector<int64_t>{48, 72, 96, 144, 192}));
}

}  // namespace
}  // namespace pelab
