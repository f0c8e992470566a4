#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_files.h"
#include "train/trainer.h"

using namespace pelab;
namespace fs = std::filesystem;

using pelab::test_files::fresh_test_dir;

namespace {

Config tiny_config(std::vector<std::string> extra = {}) {
  std::vector<std::string> overrides = {"train.epochs=3", "task.samples=192", "train.threads=1"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_config(std::string(PELAB_SOURCE_DIR) + "/configs/tiny.toml", overrides);
}

std::string checkpoint_error(const fs::path& file) {
  try {
    load_checkpoint(file);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

TrainOptions silent() {
  TrainOptions o;
  o.progress = false;
  o.quiet = true;
  return o;
}

}  // namespace

TEST(Train, TinyModelOverfitsOneFixedBatch) {
  Config config = tiny_config(
      {"train.lr=0.003", "train.weight_decay=0", "train.beta1=0.9", "train.beta2=0.999"});
  configure_threads(1);
  TrainState state = fresh_state(config);
  Dataset batch = generate_task(config.task).index(torch::arange(16, torch::kLong));
  for (int step = 0; step < 300; ++step) {
    state.optimizer->zero_grad();
    auto loss = torch::nn::functional::cross_entropy(
        state.model->forward(batch.tokens, batch.lengths), batch.labels);
    loss.backward();
    state.optimizer->step();
  }
  const EvalResult r = evaluate(state.model, batch, 16);
  EXPECT_EQ(r.accuracy, 1.0);
  EXPECT_LT(r.loss, 0.1);
}

TEST(Train, SameSeedSameNumbers) {
  auto a = fresh_test_dir("det_a", false), b = fresh_test_dir("det_b", false);
  Config config = tiny_config({"train.epochs=2", "model.dropout=0.1"});
  train_new_run(config, a, silent());
  train_new_run(config, b, silent());
  auto ha = load_checkpoint(checkpoint_path(a)).history;
  auto hb = load_checkpoint(checkpoint_path(b)).history;
  ASSERT_EQ(ha.size(), 2u);
  EXPECT_EQ(ha.back().train_loss, hb.back().train_loss);
  EXPECT_EQ(ha.back().test_loss, hb.back().test_loss);
}

// Dropout on, so the RNG state in the checkpoint matters.
TEST(Train, ResumeEqualsUninterrupted) {
  Config config = tiny_config({"model.dropout=0.1", "model.attention_dropout=0.1"});
  auto whole = fresh_test_dir("whole", false), parts = fresh_test_dir("parts", false);
  train_new_run(config, whole, silent());
  TrainOptions first = silent();
  first.max_epochs_this_call = 1;
  train_new_run(config, parts, first);
  EXPECT_EQ(load_checkpoint(checkpoint_path(parts)).epochs_done, 1);
  resume_run(parts, silent());
  TrainState a = load_checkpoint(checkpoint_path(whole));
  TrainState b = load_checkpoint(checkpoint_path(parts));
  ASSERT_EQ(a.history.size(), 3u);
  ASSERT_EQ(b.history.size(), 3u);
  for (std::size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(a.history[e].train_loss, b.history[e].train_loss) << e;
    EXPECT_EQ(a.history[e].test_loss, b.history[e].test_loss) << e;
    EXPECT_EQ(a.history[e].test_accuracy, b.history[e].test_accuracy) << e;
  }
  auto pa = a.model->named_parameters(), pb = b.model->named_parameters();
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  EXPECT_EQ(a.steps_done, b.steps_done);
}

TEST(Train, RefusesToOverwriteARun) {
  auto dir = fresh_test_dir("twice", false);
  Config config = tiny_config({"train.epochs=1"});
  train_new_run(config, dir, silent());
  EXPECT_THROW(train_new_run(config, dir, silent()), CheckpointError);
  EXPECT_TRUE(fs::exists(dir / "config.toml"));
  EXPECT_TRUE(fs::exists(dir / "metrics.json"));
  EXPECT_FALSE(fs::exists(dir / "checkpoint.pt.tmp"));
}

TEST(Checkpoint, CorruptTruncatedAndForeignFilesAreRefused) {
  auto dir = fresh_test_dir("corrupt", false);
  train_new_run(tiny_config({"train.epochs=1"}), dir, silent());
  const fs::path file = checkpoint_path(dir);
  EXPECT_EQ(checkpoint_error(file), "");
  const fs::path truncated = dir / "truncated.pt";
  fs::copy_file(file, truncated);
  fs::resize_file(truncated, fs::file_size(file) / 2);
  EXPECT_NE(checkpoint_error(truncated).find("corrupt"), std::string::npos)
      << checkpoint_error(truncated);
  const fs::path garbage = dir / "garbage.pt";
  std::ofstream(garbage) << "not a checkpoint at all";
  EXPECT_NE(checkpoint_error(garbage).find("garbage.pt"), std::string::npos);
  EXPECT_NE(checkpoint_error(dir / "missing.pt").find("no checkpoint"), std::string::npos);
  // A foreign archive: valid torch serialization, no pelab format tag.
  torch::serialize::OutputArchive foreign;
  foreign.write("x", torch::ones({2}));
  foreign.save_to((dir / "foreign.pt").string());
  EXPECT_NE(checkpoint_error(dir / "foreign.pt").find("not a pelab-checkpoint"), std::string::npos)
      << checkpoint_error(dir / "foreign.pt");
}

TEST(Checkpoint, WeightsThatDoNotMatchTheConfigAreRefused) {
  auto dir = fresh_test_dir("mismatch", false);
  fs::create_directories(dir);
  TrainState state = fresh_state(tiny_config());
  state.config.model.d_ff = 48;  // the stored weights have d_ff 64
  save_checkpoint(state, checkpoint_path(dir));
  const std::string msg = checkpoint_error(checkpoint_path(dir));
  EXPECT_NE(msg.find("ffn_in.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("shape"), std::string::npos) << msg;
}

TEST(Train, SelectSplitByName) {
  const DatasetSplit split = make_split(tiny_config().task);
  EXPECT_TRUE(torch::equal(select_split(split, "test").tokens, split.test.tokens));
  const Dataset all = select_split(split, "all");
  EXPECT_EQ(all.size(), split.train.size() + split.test.size());
  EXPECT_TRUE(torch::equal(all.labels.slice(0, split.train.size()), split.test.labels));
  EXPECT_THROW(select_split(split, "valid"), c10::Error);
}

TEST(Train, AutoEvalBatchKeepsOneBatchsActivationsWithinTheCacheBudget) {
  // The paper's shape: 128 x 256 floats = 128 KiB a sample, so 8 samples fill 1 MiB.
  Config paper = tiny_config({"train.eval_batch_size=0", "train.batch_size=64", "model.d_model=256",
                              "model.d_ff=512", "task.seq_len=128"});
  EXPECT_EQ(eval_batch_size(paper), 8);
  // A model small enough keeps the training batch size.
  Config small = tiny_config({"train.eval_batch_size=0", "train.batch_size=64", "model.d_model=64",
                              "model.d_ff=64", "task.seq_len=48"});
  EXPECT_EQ(small.task.seq_len * 64 * 4 * 64, 786432);  // 64 samples: 768 KiB <= 1 MiB
  EXPECT_EQ(eval_batch_size(small), 64);
  // A sample larger than the budget alone still evaluates, one at a time.
  Config wide = tiny_config(
      {"train.eval_batch_size=0", "model.d_model=4096", "model.n_heads=8", "task.seq_len=128"});
  EXPECT_EQ(eval_batch_size(wide), 1);
  // A size the user sets is kept as it is.
  Config fixed = tiny_config({"train.eval_batch_size=48", "model.d_model=256", "task.seq_len=128"});
  EXPECT_EQ(eval_batch_size(fixed), 48);
}

// pelab's own kernels split their loops with at::parallel_for, a header template that runs the
// whole range on the calling thread unless the library was compiled with OpenMP. pelab was built
// that way for a while without anyone noticing: train.threads = 2 ran the fused attention, RoPE,
// dropout and AdamW on one thread.
TEST(Train, PelabsOwnParallelLoopsRunOnEveryThreadAsked) {
  const int threads_before = at::get_num_threads();
  at::set_num_threads(2);
  const int64_t reached = parallel_for_threads();
  at::set_num_threads(threads_before);
  EXPECT_EQ(reached, 2) << "the library was compiled without OpenMP (see CMakeLists.txt)";
}
