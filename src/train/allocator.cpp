#include "train/allocator.h"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace pelab {

std::string keep_freed_memory_for_reuse() {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") ||
      std::getenv("PELAB_KEEP_MALLOC_ENV"))
    return "user";
#if defined(__GLIBC__)
  // glibc refuses thresholds above half its heap size (HEAP_MAX_SIZE / 2 = 32 MB on 64-bit).
  constexpr int kLargestMmapThreshold = 32 * 1024 * 1024;
  const bool threshold_set = mallopt(M_MMAP_THRESHOLD, kLargestMmapThreshold) == 1;
  const bool trim_off = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  return threshold_set && trim_off ? "reuse" : "default";
#else
  return "default";
#endif
}

}  // namespace pelab
