// Every finished run's epoch history in a store, to compare two ways of running the same sweep
// (local against cells, local against Slurm) number by number.
#pragma once

#include <array>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "store/store.h"

namespace pelab::test_fixtures {

// Run name -> per epoch {epoch, train loss, train accuracy, test loss, test accuracy, lr}.
// Runs that did not finish are left out (compare the run names too).
inline std::map<std::string, std::vector<std::array<double, 6>>> finished_run_histories(
    const std::filesystem::path& store_path) {
  Store store(store_path, Store::Mode::kExisting);
  std::map<std::string, std::vector<std::array<double, 6>>> out;
  for (const auto& r : store.list_runs()) {
    if (r.status != RunStatus::kFinished) continue;
    for (const auto& m : store.metrics(r.id))
      out[r.name].push_back(
          {double(m.epoch), m.train_loss, m.train_accuracy, m.test_loss, m.test_accuracy, m.lr});
  }
  return out;
}

}  // namespace pelab::test_fixtures
