// The fused attention kernels with bf16 products (attention_kernel_bf16.h), for CPUs with
// AVX512_BF16 (compile flags set in CMakeLists.txt). Without those flags the table is empty and
// train.precision = "bf16" keeps float32 attention.
#include "kernels/attention_kernel.h"

#if defined(__AVX512F__) && defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__FMA__)
#define PELAB_KERNEL_ISA avx512bf16
#include "kernels/attention_kernel_bf16.h"

const pelab::kernels::KernelTable& pelab::kernels::bf16_kernels() {
  using namespace avx512bf16;
  static const KernelTable table{"avx512bf16", forward_pairs_bf16<vdpbf16_product>,
                                 backward_pairs_bf16<vdpbf16_product>, kernel_table().dropout};
  return table;
}
#else
const pelab::kernels::KernelTable& pelab::kernels::bf16_kernels() {
  static const KernelTable none{"avx512bf16", nullptr, nullptr, nullptr};
  return none;
}
#endif
