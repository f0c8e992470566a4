// RoPE's rotation as the fused attention kernels apply it while they pack q and k (and turn
// their gradients back on the way out): one row at a time, by the interleaved tables of
// pe/rotary.h. Compiled per instruction set like attention_kernel_impl.h, which includes it.
#pragma once

#include <cstdint>

#include "kernels/attention_kernel.h"
#include "kernels/simd.h"

namespace pelab::kernels::PELAB_KERNEL_ISA {
namespace {

// RoPE's turn of one head's rows (AttentionProblem's rotary fields): rows of the tables, and
// how many leading dims of each row turn. `cos` null = this head does not rotate.
struct RowTurn {
  const float* cos = nullptr;
  const float* sin = nullptr;
  int64_t dims = 0;
};

inline RowTurn query_turn(const AttentionProblem& p, int64_t h) {
  return p.q_cos && h < p.rotary_heads ? RowTurn{p.q_cos, p.q_sin, p.rotary_dims} : RowTurn{};
}
inline RowTurn key_turn(const AttentionProblem& p, int64_t h) {
  return p.q_cos && h < p.rotary_heads ? RowTurn{p.k_cos, p.k_sin, p.rotary_dims} : RowTurn{};
}

// out[0, dims) = the row x turned by table row `row`, y_d = x_d c_d + x_(d^1) s_d (back: the
// transpose, x_d = y_d c_d - y_(d^1) s_d); out[turn.dims, dims) = x. Each product rounds on its
// own before the sum, as in rotary.cpp's rotate_row, so the bits are the same as its pass.
// Inlined: heads are often one vector wide (16 dims), so a call per row would cost as much as
// the turn.
template <bool kBack>
__attribute__((always_inline)) inline void turn_row(const float* x, const RowTurn& turn,
                                                    int64_t row, int64_t dims, float* out) {
  const float* c = turn.cos + row * turn.dims;
  const float* s = turn.sin + row * turn.dims;
  int64_t d = 0;
  if constexpr (kWidth > 1) {
    for (; d + kWidth <= turn.dims; d += kWidth) {
      const VecF v = vload(x + d);
      const VecF own = vrounded(vmul(v, vload(c + d)));
      const VecF partner = vrounded(vmul(vswap_pairs(v), vload(s + d)));
      vstore(out + d, kBack ? vsub(own, partner) : vadd(own, partner));
    }
  }
  for (; d < turn.dims; ++d) {
    const float own = rounded(x[d] * c[d]), partner = rounded(x[d ^ 1] * s[d]);
    out[d] = kBack ? own - partner : own + partner;
  }
  for (; d < dims; ++d) out[d] = x[d];
}

}  // namespace
}  // namespace pelab::kernels::PELAB_KERNEL_ISA
