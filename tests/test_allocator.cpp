// keep_freed_memory_for_reuse: a training step's frees are reused by the next step instead of
// going back to the kernel (page faults counted by getrusage, the quantity the setting is for).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "train/allocator.h"

namespace pelab {
namespace {

long minor_page_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// One "step": 16 blocks of 1 MB allocated, written and freed, like a step's activations.
void allocate_touch_and_free(std::vector<char*>& blocks, size_t block_bytes) {
  for (auto& block : blocks) {
    block = static_cast<char*>(std::malloc(block_bytes));
    ASSERT_NE(block, nullptr);
    std::memset(block, 1, block_bytes);
  }
  volatile char sink = 0;
  for (char* block : blocks) sink = sink + block[block_bytes - 1];
  for (char* block : blocks) std::free(block);
}

TEST(Allocator, LaterStepsReuseTheFirstStepsPagesInsteadOfFaultingNewOnes) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "glibc malloc only";
#endif
  ASSERT_EQ(keep_freed_memory_for_reuse(), "reuse");
  constexpr size_t kBlockBytes = 1 << 20;
  std::vector<char*> blocks(16);
  allocate_touch_and_free(blocks, kBlockBytes);  // the first step faults its pages in
  const long before = minor_page_faults();
  constexpr int kSteps = 10;
  for (int step = 0; step < kSteps; ++step) allocate_touch_and_free(blocks, kBlockBytes);
  const long faults = minor_page_faults() - before;
  // With glibc's defaults each step maps (or re-grows the trimmed heap by) 16 MB anew: about
  // 4,096 faults of 4 KB pages per step. Kept, ten steps fault less than one step's worth.
  const long one_step = static_cast<long>(blocks.size() * kBlockBytes / 4096);
  EXPECT_LT(faults, one_step) << faults << " page faults in " << kSteps << " steps";
}

TEST(Allocator, TheUsersOwnMallocSettingsWin) {
  setenv("MALLOC_TRIM_THRESHOLD_", "131072", 1);
  EXPECT_EQ(keep_freed_memory_for_reuse(), "user");
  unsetenv("MALLOC_TRIM_THRESHOLD_");
  setenv("PELAB_KEEP_MALLOC_ENV", "1", 1);
  EXPECT_EQ(keep_freed_memory_for_reuse(), "user");
  unsetenv("PELAB_KEEP_MALLOC_ENV");
}

}  // namespace
}  // namespace pelab
