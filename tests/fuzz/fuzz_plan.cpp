// Fuzz target: the reproduce plan parser (load_plan).
// Input: the plan file's text, read from scratch/configs/reproduce/ next to copies of the
// repository's configs (so base = "../small.toml" resolves). Contract: a ConfigError or a plan.
#include <cstdint>
#include <string_view>
#include <typeinfo>

#include "config/config.h"
#include "fuzz_input.h"
#include "reproduce/plan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pelab;
  static const bool configs_copied = (fuzz::copy_repository_configs(), true);
  (void)configs_copied;
  const auto file = fuzz::scratch().dir() / "configs" / "reproduce" / "fuzz.toml";
  fuzz::write_bytes(file, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const ReproducePlan plan = load_plan(file.string(), fuzz::scratch().dir());
    (void)plan;
  } catch (const ConfigError&) {
  } catch (const std::exception& e) {
    fuzz::undocumented_exception(typeid(e).name());
  }
  return 0;
}
