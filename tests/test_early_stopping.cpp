// The stop rule (plateau, ceiling, min_delta), the validation carve, the best-epoch checkpoint and
// resume across a stop (train/early_stopping.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "test_files.h"
#include "train/early_stopping.h"
#include "train/trainer.h"

using namespace pelab;
namespace fs = std::filesystem;

using pelab::test_files::fresh_test_dir;

namespace {

Config tiny_config(std::vector<std::string> extra = {}) {
  std::vector<std::string> overrides = {"task.samples=192", "train.threads=1",
                                        "train.validation_fraction=0.25"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_config(std::string(PELAB_SOURCE_DIR) + "/configs/tiny.toml", overrides);
}

TrainOptions silent() {
  TrainOptions o;
  o.progress = false;
  o.quiet = true;
  return o;
}

std::vector<EpochMetrics> history_of(const std::vector<double>& validation) {
  std::vector<EpochMetrics> h;
  for (size_t i = 0; i < validation.size(); ++i) {
    EpochMetrics m;
    m.epoch = static_cast<int64_t>(i) + 1;
    m.validation_accuracy = validation[i];
    m.validation_loss = 1.0 - validation[i];
    m.test_accuracy = 0.01 * double(i);
    h.push_back(m);
  }
  return h;
}

TrainConfig rule(int64_t epochs, int64_t patience, double min_delta) {
  TrainConfig t;
  t.epochs = epochs;
  t.patience = patience;
  t.min_delta = min_delta;
  return t;
}

void expect_same_weights(Transformer& a, Transformer& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

}  // namespace

TEST(StoppingRule, PlateauAfterPatienceEpochsWithoutGain) {
  const auto s = stopping_state(history_of({0.5, 0.6, 0.6, 0.59}), rule(10, 2, 0.0));
  EXPECT_EQ(s.best_epoch, 2);
  EXPECT_EQ(s.last_improvement_epoch, 2);
  EXPECT_EQ(s.stop_reason, "plateau");
  // One epoch short of the patience: keep going.
  EXPECT_EQ(stopping_state(history_of({0.5, 0.6, 0.6}), rule(10, 2, 0.0)).stop_reason, "");
}

TEST(StoppingRule, GainsBelowMinDeltaDoNotResetPatience) {
  // 0.605 and 0.609 beat 0.6 but not by min_delta 0.01: the run has plateaued at epoch 2...
  const auto h = history_of({0.5, 0.6, 0.605, 0.609});
  const auto s = stopping_state(h, rule(10, 2, 0.01));
  EXPECT_EQ(s.last_improvement_epoch, 2);
  EXPECT_EQ(s.stop_reason, "plateau");
  // ...while the best epoch is still the highest validation accuracy.
  EXPECT_EQ(s.best_epoch, 4);
  EXPECT_EQ(stopping_state(h, rule(10, 2, 0.0)).stop_reason, "");
}

TEST(StoppingRule, CeilingWhenStillImprovingAndNoPatience) {
  EXPECT_EQ(stopping_state(history_of({0.1, 0.2, 0.3}), rule(3, 2, 0.0)).stop_reason, "ceiling");
  EXPECT_EQ(stopping_state(history_of({0.1, 0.1, 0.1}), rule(3, 0, 0.0)).stop_reason, "ceiling");
  EXPECT_FALSE(training_finished(history_of({0.1, 0.1}), rule(3, 0, 0.0)));
  EXPECT_FALSE(training_finished({}, rule(3, 1, 0.0)));
}

TEST(StoppingRule, ReportedEpochIsTheEarliestBestOrTheLast) {
  const auto h = history_of({0.5, 0.7, 0.7, 0.6});
  EXPECT_EQ(reported_epoch(h).epoch, 2);
  EXPECT_EQ(stopping_state(h, rule(10, 0, 0.0)).best_epoch, 2);
  std::vector<EpochMetrics> no_validation = history_of({0.5, 0.9, 0.1});
  for (auto& m : no_validation) m.validation_accuracy.reset();
  EXPECT_EQ(reported_epoch(no_validation).epoch, 3);
}

TEST(Validation, CarveIsSeededDisjointAndComplete) {
  const DatasetSplit split = make_split(tiny_config().task);
  const int64_t n = split.train.size();
  const TrainingSets a = carve_validation(split.train, 0.25, 42);
  const TrainingSets b = carve_validation(split.train, 0.25, 42);
  const TrainingSets c = carve_validation(split.train, 0.25, 43);
  EXPECT_EQ(a.validation.size(), std::llround(0.25 * double(n)));
  EXPECT_EQ(a.fit.size() + a.validation.size(), n);
  EXPECT_TRUE(torch::equal(a.validation.tokens, b.validation.tokens));
  EXPECT_FALSE(torch::equal(a.validation.tokens, c.validation.tokens));
  // Every train row lands in exactly one of the two sets.
  auto key = [](const Dataset& d, int64_t i) {
    auto row = d.tokens[i];
    return std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  };
  std::multiset<std::vector<int64_t>> all, parts;
  for (int64_t i = 0; i < n; ++i) all.insert(key(split.train, i));
  for (int64_t i = 0; i < a.fit.size(); ++i) parts.insert(key(a.fit, i));
  for (int64_t i = 0; i < a.validation.size(); ++i) parts.insert(key(a.validation, i));
  EXPECT_EQ(all, parts);
  EXPECT_EQ(carve_validation(split.train, 0.0, 42).validation.size(), 0);
}

TEST(Validation, BadKeysAreRefused) {
  EXPECT_THROW(tiny_config({"train.validation_fraction=0", "train.patience=2"}), ConfigError);
  EXPECT_THROW(tiny_config({"train.validation_fraction=0.95"}), ConfigError);
  EXPECT_THROW(tiny_config({"train.min_delta=-0.1"}), ConfigError);
  EXPECT_THROW(tiny_config({"train.patience=-1"}), ConfigError);
}

TEST(EarlyStopping, PlateauStopsBeforeTheCeilingAndKeepsTheBestEpoch) {
  // No gain can exceed min_delta = 1: epoch 1 improves on nothing, epoch 2 is the plateau.
  const fs::path dir = fresh_test_dir("es_plateau", false);
  train_new_run(tiny_config({"train.epochs=6", "train.patience=1", "train.min_delta=1"}), dir,
                silent());
  const TrainState state = load_checkpoint(checkpoint_path(dir));
  ASSERT_EQ(state.history.size(), 2u);
  EXPECT_EQ(state.history.back().stop_reason, "plateau");
  ASSERT_TRUE(state.history[0].validation_accuracy.has_value());
  EXPECT_EQ(state.history.back().best_epoch, reported_epoch(state.history).epoch);
  const TrainState best = load_checkpoint(best_checkpoint_path(dir));
  EXPECT_EQ(best.epochs_done, reported_epoch(state.history).epoch);
  // metrics.json carries the same numbers.
  std::ifstream in(dir / "metrics.json");
  std::stringstream text;
  text << in.rdbuf();
  const auto written = metrics_from_json(text.str());
  EXPECT_EQ(written.back().stop_reason, "plateau");
  EXPECT_EQ(*written[0].validation_accuracy, *state.history[0].validation_accuracy);
}

TEST(EarlyStopping, CeilingWhenPatienceIsNeverExhausted) {
  const fs::path dir = fresh_test_dir("es_ceiling", false);
  train_new_run(tiny_config({"train.epochs=2", "train.patience=50"}), dir, silent());
  const TrainState state = load_checkpoint(checkpoint_path(dir));
  ASSERT_EQ(state.history.size(), 2u);
  EXPECT_EQ(state.history.back().stop_reason, "ceiling");
  EXPECT_EQ(state.history.front().stop_reason, "");
}

TEST(EarlyStopping, BestCheckpointHoldsTheBestEpochsWeights) {
  // Run A trains 4 epochs; run B, the same config, stops after the best epoch of A. B's weights
  // at that point are what A's best.pt must hold.
  const Config config = tiny_config({"train.epochs=4", "train.lr=0.01", "model.dropout=0.1"});
  const fs::path a = fresh_test_dir("es_best_a", false), b = fresh_test_dir("es_best_b", false);
  train_new_run(config, a, silent());
  TrainState full = load_checkpoint(checkpoint_path(a));
  TrainState best = load_checkpoint(best_checkpoint_path(a));
  const int64_t best_epoch = reported_epoch(full.history).epoch;
  EXPECT_EQ(best.epochs_done, best_epoch);
  EXPECT_EQ(reported_checkpoint_path(a), best_checkpoint_path(a));
  TrainOptions partial = silent();
  partial.max_epochs_this_call = best_epoch;
  train_new_run(config, b, partial);
  TrainState reference = load_checkpoint(checkpoint_path(b));
  expect_same_weights(best.model, reference.model);
  // Its validation accuracy, recomputed, is the recorded best.
  const TrainingSets sets = training_sets(make_split(config.task).train, config);
  EXPECT_EQ(evaluate(best.model, sets.validation, eval_batch_size(config)).accuracy,
            *full.history[best_epoch - 1].validation_accuracy);
}

TEST(EarlyStopping, ResumeAcrossAStopIsExact) {
  const Config config = tiny_config({"train.epochs=8", "train.patience=2", "train.min_delta=0.02",
                                     "train.lr=0.01", "model.dropout=0.1"});
  const fs::path whole = fresh_test_dir("es_resume_whole", false),
                 parts = fresh_test_dir("es_resume_parts", false);
  train_new_run(config, whole, silent());
  TrainOptions one = silent();
  one.max_epochs_this_call = 1;
  train_new_run(config, parts, one);
  for (int i = 0; i < 10; ++i) resume_run(parts, one);  // one epoch per call, past the stop
  const TrainState a = load_checkpoint(checkpoint_path(whole));
  TrainState b = load_checkpoint(checkpoint_path(parts));
  ASSERT_EQ(a.history.size(), b.history.size());
  EXPECT_FALSE(a.history.back().stop_reason.empty());
  for (size_t i = 0; i < a.history.size(); ++i) {
    EXPECT_EQ(a.history[i].validation_accuracy, b.history[i].validation_accuracy);
    EXPECT_EQ(a.history[i].test_accuracy, b.history[i].test_accuracy);
    EXPECT_EQ(a.history[i].best_epoch, b.history[i].best_epoch);
    EXPECT_EQ(a.history[i].stop_reason, b.history[i].stop_reason);
  }
  TrainState best_a = load_checkpoint(best_checkpoint_path(whole));
  TrainState best_b = load_checkpoint(best_checkpoint_path(parts));
  expect_same_weights(best_a.model, best_b.model);
}

TEST(EarlyStopping, APlateauedRunStaysStoppedWhenResumedWithAHigherCeiling) {
  const fs::path dir = fresh_test_dir("es_stays_stopped", false);
  train_new_run(tiny_config({"train.epochs=3", "train.patience=1", "train.min_delta=1"}), dir,
                silent());
  resume_run(dir, silent(), 12);
  const TrainState state = load_checkpoint(checkpoint_path(dir));
  EXPECT_EQ(state.history.size(), 2u);
  EXPECT_EQ(state.history.back().stop_reason, "plateau");
}
