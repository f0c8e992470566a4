// Fuzz target: the safetensors reader (read_safetensors).
// Input: the file's bytes. Contract: a std::runtime_error naming the file, or tensors that
// write_safetensors writes back and read_safetensors reads again to the same names, dtypes,
// shapes, bytes and metadata.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <typeinfo>

#include "fuzz_input.h"
#include "train/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pelab;
  const auto file = fuzz::scratch().dir() / "input.safetensors";
  const auto copy = fuzz::scratch().dir() / "copy.safetensors";
  fuzz::write_bytes(file, std::string_view(reinterpret_cast<const char*>(data), size));
  SafetensorsFile first;
  try {
    first = read_safetensors(file);
  } catch (const c10::Error& e) {  // a LibTorch error is not the documented refusal
    fuzz::undocumented_exception(e.what_without_backtrace());
  } catch (const std::runtime_error&) {
    return 0;
  } catch (const std::exception& e) {
    fuzz::undocumented_exception(typeid(e).name());
  }
  try {
    write_safetensors(copy, first.tensors, first.metadata);
  } catch (const std::runtime_error& e) {
    // Metadata the reader accepted must be writable (e.g. any valid UTF-8 string).
    std::fprintf(stderr, "pelab fuzz: accepted file cannot be written back: %s\n", e.what());
    std::abort();
  }
  const SafetensorsFile second = read_safetensors(copy);
  bool same = second.metadata == first.metadata && second.tensors.size() == first.tensors.size();
  for (size_t i = 0; same && i < first.tensors.size(); ++i) {
    const auto& [name_a, a] = first.tensors[i];
    const auto& [name_b, b] = second.tensors[i];
    same = name_a == name_b && a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() &&
           (a.numel() == 0 ||
            std::memcmp(a.data_ptr(), b.data_ptr(), a.numel() * a.element_size()) == 0);
  }
  if (!same) {
    std::fprintf(stderr, "pelab fuzz: safetensors round trip changed the file\n");
    std::abort();
  }
  return 0;
}
