// The fused attention kernels built for avx2 (compile flags: -mavx2 -mfma, set in CMakeLists.txt).
// Without those flags (a non-x86 compiler) the table is empty and the dispatcher skips it.
#include "kernels/attention_kernel.h"

#if defined(__AVX2__) && defined(__FMA__)
#define PELAB_KERNEL_ISA avx2
#include "kernels/attention_kernel_impl.h"

const pelab::kernels::KernelTable& pelab::kernels::avx2_kernels() { return avx2::kernel_table(); }
#else
const pelab::kernels::KernelTable& pelab::kernels::avx2_kernels() {
  static const KernelTable none{"avx2", nullptr, nullptr, nullptr};
  return none;
}
#endif
