// The fused attention kernels built for avx512 (compile flags: -mavx512f -mavx2 -mfma, set in
// CMakeLists.txt). Without those flags (a non-x86 compiler) the table is empty and the dispatcher
// skips it.
#include "kernels/attention_kernel.h"

#if defined(__AVX512F__) && defined(__FMA__)
#define PELAB_KERNEL_ISA avx512
#include "kernels/attention_kernel_impl.h"

const pelab::kernels::KernelTable& pelab::kernels::avx512_kernels() {
  return avx512::kernel_table();
}
#else
const pelab::kernels::KernelTable& pelab::kernels::avx512_kernels() {
  static const KernelTable none{"avx512", nullptr, nullptr, nullptr};
  return none;
}
#endif
