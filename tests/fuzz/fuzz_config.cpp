// Fuzz target: the TOML config loader with key=value overrides (load_config).
// Input: TOML text, then NUL-separated overrides ("text\0model.pe=rope\0train.lr=1e-3").
// Contract: a ConfigError or a valid config; a valid config survives to_toml -> config_from_toml
// unchanged.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "config/config.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pelab;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t toml_end = std::min(input.find('\0'), input.size());
  std::vector<std::string> overrides;
  for (size_t begin = toml_end + 1; begin <= input.size() && toml_end < input.size();) {
    const size_t end = std::min(input.find('\0', begin), input.size());
    overrides.emplace_back(input.substr(begin, end - begin));
    begin = end + 1;
  }
  const auto file = fuzz::scratch().dir() / "config.toml";
  fuzz::write_bytes(file, input.substr(0, toml_end));
  try {
    const Config config = load_config(file, overrides);
    const std::string saved = to_toml(config);
    const std::string again = to_toml(config_from_toml(saved, "round trip"));
    if (again != saved) {
      std::fprintf(stderr, "pelab fuzz: to_toml does not round-trip:\n%s\n---\n%s\n", saved.c_str(),
                   again.c_str());
      std::abort();
    }
  } catch (const ConfigError&) {
  } catch (const std::exception& e) {
    fuzz::undocumented_exception(typeid(e).name());
  }
  return 0;
}
