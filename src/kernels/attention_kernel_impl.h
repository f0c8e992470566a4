// The fused attention kernels (attention_kernel.h states the maths) over float32 products,
// compiled once per instruction set: each attention_kernel_<isa>.cpp defines PELAB_KERNEL_ISA
// and includes this file. The pieces they share with the bf16 kernels are in
// attention_kernel_parts.h.
#pragma once

#include "kernels/attention_kernel_parts.h"

namespace pelab::kernels::PELAB_KERNEL_ISA {
namespace {

void forward_pairs(const AttentionProblem& p, int64_t first, int64_t last) {
  const FlushDenormalsToZero flush_denormals;
  const Geometry g(p);
  Scratch scratch(Scratch::size({g.dk * g.lk_pad, g.lk * g.dv_pad, g.block * g.dk,
                                 g.block * g.lk_pad, g.block * g.dv_pad, kWidth * g.dk}));
  float* keys_t = scratch.take(g.dk * g.lk_pad);     // K^T [dk][lk_pad]
  float* values = scratch.take(g.lk * g.dv_pad);     // V [lk][dv_pad]
  float* queries = scratch.take(g.block * g.dk);     // scale * Q block [block][dk]
  float* logits = scratch.take(g.block * g.lk_pad);  // S, then P, then dropout(P)
  float* mixed = scratch.take(g.block * g.dv_pad);   // O block
  float* key_rows = scratch.take(kWidth * g.dk);     // a tile's turned key rows (RoPE)
  const WeightDropout dropout(p.dropout_p);

  for (int64_t pair = first; pair < last; ++pair) {
    const PairOperands x(p, pair);
    pack_transposed(x.k, p.k.row, g.lk, g.dk, keys_t, g.lk_pad, x.k_turn, key_rows);
    pack_rows(x.v, p.v.row, g.lk, g.dv, 1.0f, values, g.dv_pad);

    for (int64_t i0 = 0; i0 < g.lq; i0 += g.block) {
      const QueryBlock blk(p, g, x, i0);
      pack_rows(x.q + i0 * p.q.row, p.q.row, blk.rows, g.dk, p.scale, queries, g.dk, x.q_turn, i0);
      gemm(blk.rows, blk.cols, g.dk, queries, g.dk, 1, keys_t, g.lk_pad, logits, g.lk_pad, false);
      for (int64_t r = 0; r < blk.rows; ++r)
        attention_weights_row(p, dropout, pair, i0 + r, blk.visible, blk.cols,
                              logits + r * g.lk_pad);
      gemm(blk.rows, g.dv_pad, blk.visible, logits, g.lk_pad, 1, values, g.dv_pad, mixed, g.dv_pad,
           false);
      store_output_rows(p, g, blk, mixed, x.out);
    }
  }
}

void backward_pairs(const AttentionProblem& p, int64_t first, int64_t last, float* grad_bias) {
  const FlushDenormalsToZero flush_denormals;
  const Geometry g(p);
  Scratch scratch(
      Scratch::size({g.dk * g.lk_pad, g.lk * g.dk_pad, g.dv * g.lk_pad, g.block * g.dk_pad,
                     g.block * g.dv_pad, g.block * g.lk_pad, g.block * g.lk_pad, g.block * g.dk_pad,
                     g.dk * g.lk_pad, g.dv * g.lk_pad, g.block, g.lk * g.dk}));
  float* keys_t = scratch.take(g.dk * g.lk_pad);          // K^T [dk][lk_pad]
  float* keys = scratch.take(g.lk * g.dk_pad);            // K [lk][dk_pad]
  float* values_t = scratch.take(g.dv * g.lk_pad);        // V^T [dv][lk_pad]
  float* queries = scratch.take(g.block * g.dk_pad);      // scale * Q block [block][dk_pad]
  float* grad_mixed = scratch.take(g.block * g.dv_pad);   // dO block [block][dv_pad]
  float* probs = scratch.take(g.block * g.lk_pad);        // S, then dropout(P)
  float* grad_logits = scratch.take(g.block * g.lk_pad);  // dPd, then dS
  float* grad_queries = scratch.take(g.block * g.dk_pad);
  // dK^T and dV^T: vectorised along the keys, the long axis (a head has 16-64 dims, a block
  // 32 query rows, and a product vectorised along 16 dims would broadcast one value per FMA).
  float* grad_keys_t = scratch.take(g.dk * g.lk_pad);    // dK^T [dk][lk_pad]
  float* grad_values_t = scratch.take(g.dv * g.lk_pad);  // dV^T [dv][lk_pad]
  float* out_dot_grad = scratch.take(g.block);           // rowsum(dO * O)
  float* key_rows = scratch.take(g.lk * g.dk);           // dK's rows before their turn (RoPE)
  const WeightDropout dropout(p.dropout_p);

  for (int64_t pair = first; pair < last; ++pair) {
    const PairOperands x(p, pair);
    pack_rows(x.k, p.k.row, g.lk, g.dk, 1.0f, keys, g.dk_pad, x.k_turn);
    pack_transposed(keys, g.dk_pad, g.lk, g.dk, keys_t, g.lk_pad);  // turned once, above
    pack_transposed(x.v, p.v.row, g.lk, g.dv, values_t, g.lk_pad);
    fill_zero(grad_keys_t, grad_keys_t + g.dk * g.lk_pad);
    fill_zero(grad_values_t, grad_values_t + g.dv * g.lk_pad);

    for (int64_t i0 = 0; i0 < g.lq; i0 += g.block) {
      const QueryBlock blk(p, g, x, i0);
      const int64_t rows = blk.rows, cols = blk.cols;
      if (blk.visible == 0) {
        zero_query_gradients(p, g, x, blk);
        continue;
      }
      pack_rows(x.q + i0 * p.q.row, p.q.row, rows, g.dk, p.scale, queries, g.dk_pad, x.q_turn, i0);
      pack_output_gradient(p, g, x, blk, grad_mixed, out_dot_grad);
      gemm(rows, cols, g.dk, queries, g.dk_pad, 1, keys_t, g.lk_pad, probs, g.lk_pad, false);
      gemm(rows, cols, g.dv, grad_mixed, g.dv_pad, 1, values_t, g.lk_pad, grad_logits, g.lk_pad,
           false);
      for (int64_t r = 0; r < rows; ++r)
        weight_gradient_row(p, dropout, pair, i0 + r, blk.visible, cols, out_dot_grad[r],
                            probs + r * g.lk_pad, grad_logits + r * g.lk_pad, grad_bias);
      // dV^T += dO^T Pd and dK^T += (scale Q)^T dS: A read transposed (a_row = 1). Each element
      // sums over the block's rows in order with one FMA each, as dV += Pd^T dO would: the same
      // numbers. Columns [visible, cols) add exact zeros (their P and dS are 0).
      gemm(g.dv, cols, rows, grad_mixed, 1, g.dv_pad, probs, g.lk_pad, grad_values_t, g.lk_pad,
           true);
      gemm(g.dk, cols, rows, queries, 1, g.dk_pad, grad_logits, g.lk_pad, grad_keys_t, g.lk_pad,
           true);
      // dQ = scale dS K.
      gemm(rows, g.dk_pad, blk.visible, grad_logits, g.lk_pad, 1, keys, g.dk_pad, grad_queries,
           g.dk_pad, false);
      store_query_gradients(p, g, x, blk, grad_queries);
    }
    store_key_value_gradients(p, g, x, grad_keys_t, grad_values_t, key_rows);
  }
}

// Streams of kDropoutChunk elements share a key: element i is counter i % chunk of stream
// i / chunk, so a thread can start anywhere with the same result.
constexpr int64_t kDropoutChunk = 4096;

void dropout_range(const float* x, const float* residual, float* out, int64_t first, int64_t last,
                   float p, uint64_t seed) {
  const uint32_t threshold = dropout_threshold24(p);
  const VecF scale = vset1(1.0f / (1.0f - p));
  for (int64_t begin = first; begin < last;) {
    const int64_t chunk = begin / kDropoutChunk;
    const int64_t end = min_of(last, (chunk + 1) * kDropoutChunk);
    const uint32_t key = dropout_row_key(seed, chunk, 0, 1);
    int64_t i = begin;
    // Vector steps only where the lane counters line up with kWidth-aligned offsets, so the
    // scalar head/tail and the vector body make the same decisions.
    for (; i < end && (i % kDropoutChunk) % kWidth != 0; ++i) {
      const bool keep = dropout_keep_one(key, static_cast<uint32_t>(i % kDropoutChunk), threshold);
      out[i] = (residual ? residual[i] : 0.0f) + (keep ? x[i] * (1.0f / (1.0f - p)) : 0.0f);
    }
    for (; i + kWidth <= end; i += kWidth) {
      VecF y = vkeep(dropout_keep(key, static_cast<uint32_t>(i % kDropoutChunk), threshold),
                     vmul(vload(x + i), scale));
      if (residual) y = vadd(vload(residual + i), y);
      vstore(out + i, y);
    }
    for (; i < end; ++i) {
      const bool keep = dropout_keep_one(key, static_cast<uint32_t>(i % kDropoutChunk), threshold);
      out[i] = (residual ? residual[i] : 0.0f) + (keep ? x[i] * (1.0f / (1.0f - p)) : 0.0f);
    }
    begin = end;
  }
}

}  // namespace

#define PELAB_STRINGIFY_(x) #x
#define PELAB_STRINGIFY(x) PELAB_STRINGIFY_(x)

const KernelTable& kernel_table() {
  static const KernelTable table{PELAB_STRINGIFY(PELAB_KERNEL_ISA), forward_pairs, backward_pairs,
                                 dropout_range};
  return table;
}

}  // namespace pelab::kernels::PELAB_KERNEL_ISA
