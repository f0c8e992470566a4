// The fused attention kernels in plain C++ (one lane), for CPUs without AVX2: the fallback the
// dispatcher picks last, and a third implementation the tests compare against.
#include "kernels/attention_kernel.h"

#define PELAB_KERNEL_ISA generic
#include "kernels/attention_kernel_impl.h"

const pelab::kernels::KernelTable& pelab::kernels::generic_kernels() {
  return generic::kernel_table();
}
