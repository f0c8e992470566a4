// pelab predict: class logits and predictions of a run's model for sequences a user supplies, in
// the format `pelab data` writes (src/train/data_file.h).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "kernels/onednn_linear.h"
#include "train/data_file.h"
#include "train/trainer.h"

namespace pelab::cli {

namespace {

// Logits [N, C] in eval mode, batch by batch (each row is independent of the others).
torch::Tensor predict_logits(Transformer& model, const Dataset& data, int64_t batch_size) {
  model->eval();
  torch::NoGradGuard no_grad;
  const PackedWeightsScope packed_weights;  // the weights stay as they are for the whole pass
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    const int64_t end = std::min(data.size(), start + batch_size);
    parts.push_back(
        model->forward(data.tokens.slice(0, start, end), data.lengths.slice(0, start, end)));
  }
  return torch::cat(parts).to(torch::kDouble).contiguous();
}

}  // namespace

void add_predict(CLI::App& app) {
  struct Args {
    std::string run_dir, input_file;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "predict",
      "Class logits and predictions of a run's model for sequences in a file (the format of "
      "pelab data: FILE.safetensors or FILE.jsonl)");
  cmd->add_option("run", args->run_dir, "run folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--input,-i", args->input_file, "FILE.safetensors or FILE.jsonl")->required();
  cmd->add_flag("--json", args->json,
                "print {\"samples\", \"predictions\", \"logits\", \"accuracy\" (with labels)}");
  cmd->callback([args] {
    const DataFile rows = read_data_file(args->input_file);
    TrainState state = load_checkpoint(checkpoint_path(args->run_dir));
    configure_threads(state.config.train.threads);
    const auto& task = state.config.task;
    check_rows_for_model(rows, args->input_file, task.vocab_size, task.seq_len, num_classes(task));
    const torch::Tensor logits =
        predict_logits(state.model, rows.data, eval_batch_size(state.config));
    const torch::Tensor predictions = logits.argmax(1);
    const bool labelled = rows.data.labels.defined();
    const double accuracy =
        labelled ? predictions.eq(rows.data.labels).to(torch::kDouble).mean().item<double>() : 0;
    const int64_t n = logits.size(0), classes = logits.size(1);
    if (args->json) {
      nlohmann::ordered_json j;
      j["samples"] = n;
      j["predictions"] = std::vector<int64_t>(predictions.data_ptr<int64_t>(),
                                              predictions.data_ptr<int64_t>() + n);
      auto& rows_json = j["logits"] = nlohmann::ordered_json::array();
      for (int64_t r = 0; r < n; ++r) {
        const double* row = logits[r].data_ptr<double>();
        rows_json.push_back(std::vector<double>(row, row + classes));
      }
      if (labelled) j["accuracy"] = accuracy;
      fmt::print("{}\n", j.dump());
      return;
    }
    fmt::print("{:>6} {:>10} {:>6}  logits ({} classes)\n", "row", "prediction", "label", classes);
    for (int64_t r = 0; r < n; ++r) {
      std::string line;
      for (int64_t c = 0; c < classes; ++c)
        line += fmt::format("{}{:.4f}", c ? " " : "", logits[r][c].item<double>());
      fmt::print("{:>6} {:>10} {:>6}  {}\n", r, predictions[r].item<int64_t>(),
                 labelled ? std::to_string(rows.data.labels[r].item<int64_t>()) : "-", line);
    }
    if (labelled) fmt::print("accuracy {:.4f} on {} labelled rows\n", accuracy, n);
  });
}

}  // namespace pelab::cli
