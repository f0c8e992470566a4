#include "train/checkpoint.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "config/user_paths.h"
#include "train/checkpoint_records.h"
#include "train/fused_adamw.h"
#include "train/interrupt.h"

namespace pelab {
namespace fs = std::filesystem;

fs::path checkpoint_path(const fs::path& run_dir) { return run_dir / "checkpoint.pt"; }

void write_file_atomically(const fs::path& file, const std::string& contents) {
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << contents;
    out.flush();
    if (!out) {
      fs::remove(tmp);
      throw std::runtime_error(fmt::format("cannot write '{}'", file.string()));
    }
  }
  fs::rename(tmp, file);
}

std::unique_ptr<torch::optim::AdamW> make_optimizer(const Config& config, Transformer& model) {
  const auto& t = config.train;
  auto options =
      torch::optim::AdamWOptions(t.lr).betas({t.beta1, t.beta2}).weight_decay(t.weight_decay);
  return std::make_unique<FusedAdamW>(model->parameters(), options);  // AdamW, one pass
}

TrainState fresh_state(const Config& config) {
  TrainState state;
  state.config = config;
  state.model = build_model(config);
  state.optimizer = make_optimizer(config, state.model);
  return state;
}

std::string metrics_to_json(const std::vector<EpochMetrics>& history) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : history) {
    nlohmann::json e = {{"epoch", m.epoch},
                        {"train_loss", m.train_loss},
                        {"train_accuracy", m.train_accuracy},
                        {"test_loss", m.test_loss},
                        {"test_accuracy", m.test_accuracy},
                        {"lr", m.lr},
                        {"seconds", m.seconds},
                        {"train_samples_per_s", m.train_samples_per_s}};
    if (m.validation_accuracy) {
      e["validation_loss"] = *m.validation_loss;
      e["validation_accuracy"] = *m.validation_accuracy;
      e["best_epoch"] = m.best_epoch;
    }
    if (!m.stop_reason.empty()) e["stop_reason"] = m.stop_reason;
    if (!m.analysis.is_null()) e["analysis"] = m.analysis;
    out.push_back(std::move(e));
  }
  return out.dump(1);
}

std::vector<EpochMetrics> metrics_from_json(const std::string& text) {
  std::vector<EpochMetrics> history;
  for (const auto& j : nlohmann::json::parse(text)) {
    EpochMetrics m;
    m.epoch = j.at("epoch");
    m.train_loss = j.at("train_loss");
    m.train_accuracy = j.at("train_accuracy");
    m.test_loss = j.at("test_loss");
    m.test_accuracy = j.at("test_accuracy");
    m.lr = j.at("lr");
    m.seconds = j.at("seconds");
    m.train_samples_per_s = j.at("train_samples_per_s");
    if (j.contains("validation_accuracy")) {
      m.validation_loss = j.at("validation_loss").get<double>();
      m.validation_accuracy = j.at("validation_accuracy").get<double>();
      m.best_epoch = j.at("best_epoch");
    }
    if (j.contains("stop_reason")) m.stop_reason = j.at("stop_reason").get<std::string>();
    if (j.contains("analysis")) m.analysis = j.at("analysis");
    history.push_back(m);
  }
  return history;
}

namespace {

// Archive keys cannot contain '.', so "blocks.0.ffn_in.weight" is stored as
// "blocks__0__ffn_in__weight" (no module or parameter name of pelab contains "__").
std::string archive_key(const std::string& name) {
  std::string key;
  for (char c : name) key += c == '.' ? std::string("__") : std::string(1, c);
  return key;
}

}  // namespace

void save_checkpoint(const TrainState& state, const fs::path& file) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
  archive.write("config", c10::IValue(to_toml(state.config)));
  archive.write("epochs_done", c10::IValue(state.epochs_done));
  archive.write("steps_done", c10::IValue(state.steps_done));
  archive.write("metrics", c10::IValue(metrics_to_json(state.history)));
  const EpochProgress& e = state.epoch_progress;
  archive.write("epoch_step", c10::IValue(e.step));
  archive.write("epoch_loss_sum", c10::IValue(e.loss_sum));
  archive.write("epoch_correct", c10::IValue(e.correct));
  archive.write("epoch_seen", c10::IValue(e.seen));
  archive.write("epoch_train_seconds", c10::IValue(e.train_seconds));
  archive.write("rng_state", at::detail::getDefaultCPUGenerator().get_state());
  torch::serialize::OutputArchive model_archive, optimizer_archive;
  for (const auto& p : state.model->named_parameters())
    model_archive.write(archive_key(p.key()), p.value());
  for (const auto& b : state.model->named_buffers())
    model_archive.write(archive_key(b.key()), b.value(), /*is_buffer=*/true);
  state.optimizer->save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  const fs::path tmp = file.string() + ".tmp";
  try {
    archive.save_to(tmp.string());
    test_pause("CHECKPOINT_WRITE");
    fs::rename(tmp, file);
  } catch (const std::exception& e) {
    fs::remove(tmp);
    throw CheckpointError(fmt::format("cannot write checkpoint '{}': {}", file.string(), e.what()));
  }
}

namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// Copies every parameter and buffer of `model` from the archive, checking names and shapes.
void load_model_tensors(torch::nn::Module& model, torch::serialize::InputArchive& archive,
                        const fs::path& file) {
  auto load = [&](const std::string& name, torch::Tensor& target, bool is_buffer) {
    torch::Tensor stored;
    if (!archive.try_read(archive_key(name), stored, is_buffer))
      throw CheckpointError(
          fmt::format("checkpoint '{}' does not match its configuration: tensor '{}' is missing",
                      file.string(), name));
    if (stored.sizes() != target.sizes())
      throw CheckpointError(fmt::format(
          "checkpoint '{}' does not match its configuration: tensor '{}' has shape {} but the "
          "model expects {}",
          file.string(), name, fmt::join(stored.sizes(), "x"), fmt::join(target.sizes(), "x")));
    torch::NoGradGuard no_grad;
    target.copy_(stored);
  };
  for (auto& p : model.named_parameters()) load(p.key(), p.value(), false);
  for (auto& b : model.named_buffers()) load(b.key(), b.value(), true);
}

// A lower bound on the parameters of the model `config` describes (token embedding, feed-forward
// layers, classifier), in double so that no configuration overflows it.
double minimum_parameter_count(const Config& config) {
  const auto& m = config.model;
  const double d = static_cast<double>(m.d_model);
  return static_cast<double>(config.task.vocab_size) * d +
         static_cast<double>(m.n_layers) * 2.0 * d * static_cast<double>(m.d_ff) +
         d * static_cast<double>(num_classes(config.task));
}

}  // namespace

TrainState load_checkpoint(const fs::path& file) {
  if (!user_path_exists(file))
    throw CheckpointError(
        fmt::format("no checkpoint at '{}' (is this a pelab run folder?)", file.string()));
  // LibTorch's own parser crashes on some damaged type records: they are checked first.
  check_checkpoint_records(file);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string());
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("checkpoint '{}' is corrupt or not a pelab checkpoint: {}",
                                      file.string(), first_line(e.what_without_backtrace())));
  } catch (const std::exception& e) {  // e.g. torch::jit::ErrorReport from a damaged archive
    throw CheckpointError(fmt::format("checkpoint '{}' is corrupt or not a pelab checkpoint: {}",
                                      file.string(), first_line(e.what())));
  }
  TrainState state;
  try {
    c10::IValue format, config_text, epochs, steps, metrics;
    if (!archive.try_read("format", format) || !format.isString() ||
        format.toStringRef() != kCheckpointFormat)
      throw CheckpointError(fmt::format("'{}' is not a {} file", file.string(), kCheckpointFormat));
    archive.read("config", config_text);
    archive.read("epochs_done", epochs);
    archive.read("steps_done", steps);
    archive.read("metrics", metrics);
    try {
      state.config = config_from_toml(config_text.toStringRef(), file.string() + " (config)");
    } catch (const ConfigError& e) {
      throw CheckpointError(fmt::format("checkpoint '{}' holds an invalid configuration: {}",
                                        file.string(), e.what()));
    }
    state.epochs_done = epochs.toInt();
    state.steps_done = steps.toInt();
    state.history = metrics_from_json(metrics.toStringRef());
    // The file stores every parameter (at least a byte each): a configuration describing a larger
    // model is damaged or forged, and is refused before the model is allocated.
    const double file_bytes = static_cast<double>(fs::file_size(file));
    if (minimum_parameter_count(state.config) > file_bytes)
      throw CheckpointError(fmt::format(
          "checkpoint '{}' does not match its configuration: the configured model has at least "
          "{:.0f} parameters but the file has only {:.0f} bytes",
          file.string(), minimum_parameter_count(state.config), file_bytes));
    // Checkpoints from before mid-epoch checkpoints lack these: they are at an epoch boundary.
    c10::IValue value;
    EpochProgress& e = state.epoch_progress;
    if (archive.try_read("epoch_step", value)) e.step = value.toInt();
    if (archive.try_read("epoch_loss_sum", value)) e.loss_sum = value.toDouble();
    if (archive.try_read("epoch_correct", value)) e.correct = value.toInt();
    if (archive.try_read("epoch_seen", value)) e.seen = value.toInt();
    if (archive.try_read("epoch_train_seconds", value)) e.train_seconds = value.toDouble();
    if (e.step < 0 || e.seen < 0 || e.correct < 0 || e.correct > e.seen)
      throw CheckpointError(fmt::format(
          "checkpoint '{}' is damaged: epoch position step {} seen {} correct {}; accepted: "
          "0 <= correct <= seen, step >= 0",
          file.string(), e.step, e.seen, e.correct));
    state.model = build_model(state.config);
    torch::serialize::InputArchive model_archive, optimizer_archive;
    archive.read("model", model_archive);
    load_model_tensors(*state.model, model_archive, file);
    state.optimizer = make_optimizer(state.config, state.model);
    archive.read("optimizer", optimizer_archive);
    state.optimizer->load(optimizer_archive);
    torch::Tensor rng;
    archive.read("rng_state", rng);
    auto generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(rng);
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(fmt::format("checkpoint '{}' is damaged or from another version: {}",
                                      file.string(), first_line(e.what())));
  }
  return state;
}

}  // namespace pelab
