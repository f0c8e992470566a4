// Fuzz target: the checkpoint loader (load_checkpoint) and the metric history it holds
// (metrics_from_json, which also reads run folders' metrics.json).
// Input: a checkpoint file's bytes (a LibTorch zip archive, starting "PK\3\4"), or else the text of
// a metric history. Contract: a CheckpointError naming the file or a loaded state; for a history,
// a std::exception (bad JSON, missing or mistyped fields) or the epochs. LibTorch itself is not
// instrumented; only pelab's code is.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <typeinfo>

#include "fuzz_input.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pelab;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.substr(0, 4) != std::string_view("PK\3\4", 4)) {
    try {
      const auto history = metrics_from_json(std::string(input));
      (void)history;
    } catch (const std::exception&) {
    }
    return 0;
  }
  const auto file = fuzz::scratch().dir() / "checkpoint.pt";
  fuzz::write_bytes(file, input);
  try {
    const TrainState state = load_checkpoint(file);
    (void)state;
  } catch (const CheckpointError&) {
  } catch (const std::exception& e) {
    fuzz::undocumented_exception(typeid(e).name());
  }
  return 0;
}
