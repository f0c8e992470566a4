// Fuzz target: the checkpoint loader (load_checkpoint).
// Input: the checkpoint file's bytes (a LibTorch zip archive). Contract: a CheckpointError naming
// the file, or a loaded state. LibTorch itself is not instrumented; only pelab's code is.
#include <cstdint>
#include <string_view>
#include <typeinfo>

#include "fuzz_input.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pelab;
  const auto file = fuzz::scratch().dir() / "checkpoint.pt";
  fuzz::write_bytes(file, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const TrainState state = load_checkpoint(file);
    (void)state;
  } catch (const CheckpointError&) {
  } catch (const std::exception& e) {
    fuzz::undocumented_exception(typeid(e).name());
  }
  return 0;
}
