// What the analysis commands share: a trained run with the data of one split, and where a figure
// goes by default.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "train/early_stopping.h"
#include "train/trainer.h"

namespace pelab::cli {

struct RunWithData {
  TrainState state;
  Dataset data;
};

// Loads RUN's checkpoint, sets the run's thread count and regenerates the split `split` names.
inline RunWithData load_run_with_split(const std::string& run_dir, const std::string& split) {
  RunWithData r{load_checkpoint(reported_checkpoint_path(run_dir)), {}};
  configure_threads(r.state.config.train.threads);
  r.data = select_split(make_split(r.state.config.task), split);
  return r;
}

// --figure: "none" for no figure, "" for RUN/default_name, anything else as given.
inline std::optional<std::filesystem::path> figure_path(const std::string& figure_option,
                                                        const std::string& run_dir,
                                                        const std::string& default_name) {
  if (figure_option == "none") return std::nullopt;
  if (figure_option.empty()) return std::filesystem::path(run_dir) / default_name;
  return std::filesystem::path(figure_option);
}

}  // namespace pelab::cli
