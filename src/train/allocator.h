// glibc malloc settings for training: keep freed memory for the next step (docs/PERFORMANCE.md,
// "Page faults").
#pragma once

#include <string>

namespace pelab {

// LibTorch allocates every activation and gradient afresh each step and frees it at the end.
// With glibc's defaults, blocks of a few hundred KB or more come from mmap (the threshold adapts
// only up to the largest block freed so far) and the heap's free top is returned to the kernel
// past 128 KB, so the next step touches new pages: on the small reproduction model that was
// 560,000 page faults in a 5-second benchmark and a quarter of the CPU time. This raises the mmap
// threshold to glibc's largest allowed value (32 MB on 64-bit) and stops trimming, so a step
// reuses the pages of the last one; the cost is that the process keeps its peak heap.
// Does nothing when the user has set MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or
// PELAB_KEEP_MALLOC_ENV (glibc's own settings win), or when the C library is not glibc.
// Returns what it did, for the benchmark's header line: "reuse", "user" or "default".
std::string keep_freed_memory_for_reuse();

}  // namespace pelab
