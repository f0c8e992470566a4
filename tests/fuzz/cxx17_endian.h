// Force-included into the fuzz build's C++17 translation units (see CMakeLists.txt): clang 14
// cannot compile LibTorch 1.13's headers as C++20 against libstdc++ 12 (it instantiates
// std::vector<c10::IValue> while IValue is still incomplete), so the loaders that include LibTorch
// are fuzzed as C++17. Besides this, they use no C++20; std::endian is all that is missing.
#pragma once

#include <bit>

#if __cplusplus < 202002L
namespace std {
enum class endian {
  little = __ORDER_LITTLE_ENDIAN__,
  big = __ORDER_BIG_ENDIAN__,
  native = __BYTE_ORDER__
};
}  // namespace std
#endif
