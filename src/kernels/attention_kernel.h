// The fused attention kernels' plain-C++ face: raw pointers and strides, no LibTorch, so the
// kernel files can be compiled once per instruction set without the precompiled torch header.
// fused_attention.cpp turns tensors into an AttentionProblem, splits the (batch, head) pairs over
// threads and calls the table of the best instruction set this CPU has.
//
// Per (batch b, head h), with S = scale * Q K^T + bias[h] + mask[b, h] (Q and K after RoPE's
// rotation, when the problem carries one):
//   forward:  P = softmax(S) row-wise, Pd = dropout(P), O = Pd V;
//             saves each row's max and 1 / sum so backward recomputes P exactly.
//   backward: dPd = dO V^T, dP = dropout(dPd), dS = P * (dP - rowsum(dO * O)),
//             dV = Pd^T dO, dQ = scale dS K, dK = scale dS^T Q, dbias[h] += dS
//             (dQ and dK turned back by R^T when the problem rotates).
// The logits, probabilities and their gradients live only in per-thread scratch, one block of
// query rows at a time: nothing of size [B, H, Lq, Lk] is ever written to memory.
#pragma once

#include <cstdint>

namespace pelab::kernels {

// A [B, H, L, D] operand: element (b, h, l, d) at data[b*batch + h*head + l*row + d].
struct StridedOperand {
  const float* data = nullptr;
  int64_t batch = 0, head = 0, row = 0;
};
// The same for a result the kernel writes.
struct StridedResult {
  float* data = nullptr;
  int64_t batch = 0, head = 0, row = 0;
};

struct AttentionProblem {
  int64_t batch = 0, heads = 0, q_len = 0, k_len = 0, qk_dim = 0, v_dim = 0;
  StridedOperand q, k, v;
  // [H, Lq, Lk] contiguous, or null.
  const float* bias = nullptr;
  // Additive mask broadcast to [B, H, Lq, Lk] through the strides (0 along broadcast axes; the
  // key axis is contiguous), or null. Keys whose mask is -inf for every query row of a block
  // are skipped altogether, which is what makes right padding cheap.
  StridedOperand mask;
  float scale = 1.0f;
  // RoPE, applied by the kernels themselves: heads [0, rotary_heads) turn dims [0, rotary_dims)
  // of q row i by table row i and of k row j by row j as they are packed (S = scale (R q)(R k)^T),
  // and backward hands back R^T of the gradients. Tables [L][rotary_dims] interleaved as
  // pe/rotary.h's interleaved_rotary_rows lays them out; q_cos null = no rotation.
  const float* q_cos = nullptr;
  const float* q_sin = nullptr;
  const float* k_cos = nullptr;
  const float* k_sin = nullptr;
  int64_t rotary_dims = 0, rotary_heads = 0;
  // Dropout on the attention weights: keep with probability 1 - p and scale by 1 / (1 - p);
  // element (b, h, i, j) is decided by a hash of (seed, b, h, i, j) alone.
  float dropout_p = 0.0f;
  uint64_t dropout_seed = 0;

  // Forward output O as [B, H, Lq, Dv] through strides (pelab writes [B, Lq, H, Dv]).
  float* out = nullptr;
  int64_t out_batch = 0, out_head = 0, out_row = 0;
  // [B, H, Lq] each: the softmax statistics backward needs; null in inference.
  float* row_max = nullptr;
  float* row_inv_sum = nullptr;

  // Backward only: the incoming gradient dO, laid out like `out`.
  const float* grad_out = nullptr;
  int64_t grad_out_batch = 0, grad_out_head = 0, grad_out_row = 0;
  // The [B, H, L, D] gradients of q, k, v through strides (pelab passes [B, L, H, D] buffers, the
  // layout of the projections the heads are views of, so no backward copies them again).
  StridedResult grad_q, grad_k, grad_v;
};

// Runs (batch, head) pairs [first, last) of the flattened B x H range.
using ForwardFn = void (*)(const AttentionProblem&, int64_t first, int64_t last);
// grad_bias: null, or an [H, Lq, Lk] accumulator each pair's dS is added to (never overwritten);
// the caller keeps two threads from adding to the same head at once.
using BackwardFn = void (*)(const AttentionProblem&, int64_t first, int64_t last, float* grad_bias);

// Dropout on a flat array: out[i] = residual[i] (when given) + x[i] * keep(i) / (1 - p), where
// keep(i) hashes (seed, i) alone, so backward regenerates it (x = the incoming gradient,
// residual = null) and any split of [first, last) over threads gives the same numbers.
using DropoutFn = void (*)(const float* x, const float* residual, float* out, int64_t first,
                           int64_t last, float p, uint64_t seed);

struct KernelTable {
  const char* isa;
  ForwardFn forward;
  BackwardFn backward;
  DropoutFn dropout;
};

// The table in use (fused_attention.cpp: the best this CPU runs, or set_fused_attention_isa's).
const KernelTable& active_kernels();

const KernelTable& avx512_kernels();
const KernelTable& avx2_kernels();
const KernelTable& generic_kernels();
// The avx512 kernels with bf16 products (VDPBF16PS; attention_kernel_bf16.h), for
// train.precision = "bf16"; forward is null where the build has no AVX512_BF16 (the caller
// checks the CPU).
const KernelTable& bf16_kernels();
// The same kernels with their products on AMX tiles (attention_kernel_amx.cpp): the same bits as
// bf16_kernels(), faster where the CPU has AMX-BF16; forward is null where the build has no AMX.
const KernelTable& amx_kernels();
// True where the CPU has AMX-BF16 and Linux granted this process the tiles' state (asked once).
bool amx_tiles_usable();

}  // namespace pelab::kernels
