// Fuzz target: the sweep-file parser (parse_sweep_file, then expand_sweep as `pelab sweep` does).
// Input: the sweep file's text, read from scratch/configs/sweeps/ next to copies of the
// repository's configs (so base = "../tiny.toml" resolves). Contract: a ConfigError or runs.
#include <cstdint>
#include <string_view>
#include <typeinfo>

#include "fuzz_input.h"
#include "sweep/sweep_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pelab;
  static const bool configs_copied = (fuzz::copy_repository_configs(), true);
  (void)configs_copied;
  const auto file = fuzz::scratch().dir() / "configs" / "sweeps" / "fuzz.toml";
  fuzz::write_bytes(file, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const SweepSpec spec = parse_sweep_file(file);
    // Expanding loads a config and generates a task per run: grids of 65..10000 runs would cost
    // seconds each and starve the search. Larger grids are expanded: they must be refused at once.
    double grid_runs = 1;
    for (const auto& [key, values] : spec.grid) grid_runs *= static_cast<double>(values.size());
    if (grid_runs <= 64 || grid_runs > 10000) {
      const auto runs = expand_sweep(spec, /*threads_per_worker=*/1);
      (void)runs;
    }
  } catch (const ConfigError&) {
  } catch (const std::exception& e) {
    fuzz::undocumented_exception(typeid(e).name());
  }
  return 0;
}
