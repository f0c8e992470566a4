// The fused attention kernels with bf16 products, for train.precision = "bf16" (attention_kernel.h
// states the maths): forward_pairs and backward_pairs of attention_kernel_impl.h, step for step,
// except that every matrix product takes bf16 operands, rounded from float32 as they are packed,
// and sums in float32 (VDPBF16PS). The softmax, its statistics, dropout, the bias and mask,
// rowsum(dO * O) and the dK and dV accumulators stay float32: mixed precision, as the linear
// layers run it. Backward recomputes the logits from the same bf16 operands through the same
// products, so they are the forward's to the bit and the saved statistics fit them.
//
// VDPBF16PS multiplies pairs along the summed axis k: the left operand is broadcast one Word
// (values k and k+1 of a row) at a time; the right one is stored as "row pairs", Words
// (B[k][n], B[k+1][n]) along n. Compiled only into attention_kernel_avx512bf16.cpp.
#pragma once

#include "kernels/attention_kernel_impl.h"

namespace pelab::kernels::PELAB_KERNEL_ISA {
namespace {

// out[0, n) = bf16(in[0, n)), n a multiple of kWidth.
inline void round_row(const float* in, int64_t n, Half* out) {
  for (int64_t j = 0; j < n; j += kWidth)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), vround_bf16(vload(in + j)));
}

// out[j] = Word(bf16 a[j], bf16 b[j]) for j < n, a multiple of kWidth; b null pairs with zeros.
inline void pair_rows(const float* a, const float* b, int64_t n, Word* out) {
  for (int64_t j = 0; j < n; j += kWidth) {
    const __m512i low = _mm512_cvtepu16_epi32(vround_bf16(vload(a + j)));
    const __m512i high = b ? _mm512_slli_epi32(_mm512_cvtepu16_epi32(vround_bf16(vload(b + j))), 16)
                           : _mm512_setzero_si512();
    _mm512_storeu_si512(out + j, _mm512_or_si512(low, high));
  }
}

// Rows [0, rows) of src [.][ld] as row pairs: out[t][j] = Word(src[2t][j], src[2t+1][j]) for
// j < n, out [ceil(rows / 2)][out_ld]; an odd last row pairs with zeros.
void pair_up_rows(const float* src, int64_t rows, int64_t ld, int64_t n, Word* out,
                  int64_t out_ld) {
  for (int64_t t = 0; 2 * t < rows; ++t)
    pair_rows(src + 2 * t * ld, 2 * t + 1 < rows ? src + (2 * t + 1) * ld : nullptr, n,
              out + t * out_ld);
}

const Word* as_words(const Half* bf16_row) { return reinterpret_cast<const Word*>(bf16_row); }

// Scratch handed out as bf16 values or Words.
Half* take_halves(Scratch& scratch, int64_t n) {
  return reinterpret_cast<Half*>(scratch.take((n + 1) / 2));
}
Word* take_words(Scratch& scratch, int64_t n) { return reinterpret_cast<Word*>(scratch.take(n)); }

// Where a product sums over d (S = Q K^T, dPd = dO V^T), the right operand comes from the
// float32 transposes the float32 kernels pack (K^T, V^T: rows d), paired up; the left one is the
// block's rows rounded in place, read as Words. Where it sums over the block's rows (dV^T, dK^T),
// the left operand is the rows paired up, [row pairs][dims], read through strides as its
// transpose. Every operand rounds the same float32 values with the same instruction, so a value
// used twice is the same bf16 twice.
void forward_pairs_bf16(const AttentionProblem& p, int64_t first, int64_t last) {
  const FlushDenormalsToZero flush_denormals;
  const Geometry g(p);
  const int64_t key_pairs = (g.lk + 1) / 2, dim_pairs = (g.dk + 1) / 2;
  Scratch scratch(
      Scratch::size({g.dk * g.lk_pad, dim_pairs * g.lk_pad, g.lk * g.dv_pad, key_pairs * g.dv_pad,
                     g.block * g.dk_pad, (g.block * g.dk_pad + 1) / 2, g.block * g.lk_pad,
                     (g.block * g.lk_pad + 1) / 2, g.block * g.dv_pad, kWidth * g.dk}));
  float* keys_t = scratch.take(g.dk * g.lk_pad);                  // K^T [dk][lk_pad], turned
  Word* key_pairs_t = take_words(scratch, dim_pairs * g.lk_pad);  // K^T, row pairs
  float* values = scratch.take(g.lk * g.dv_pad);                  // V [lk][dv_pad]
  Word* value_pairs = take_words(scratch, key_pairs * g.dv_pad);  // V, row pairs
  float* queries = scratch.take(g.block * g.dk_pad);              // scale * Q block
  Half* queries_bf16 = take_halves(scratch, g.block * g.dk_pad);  // [block][dk_pad]
  float* logits = scratch.take(g.block * g.lk_pad);               // S, then dropout(P)
  Half* weights_bf16 = take_halves(scratch, g.block * g.lk_pad);  // dropout(P) [block][lk_pad]
  float* mixed = scratch.take(g.block * g.dv_pad);                // O block
  float* key_rows = scratch.take(kWidth * g.dk);                  // a tile's turned key rows
  const WeightDropout dropout(p.dropout_p);

  for (int64_t pair = first; pair < last; ++pair) {
    const PairOperands x(p, pair);
    pack_transposed(x.k, p.k.row, g.lk, g.dk, keys_t, g.lk_pad, x.k_turn, key_rows);
    pair_up_rows(keys_t, g.dk, g.lk_pad, g.lk_pad, key_pairs_t, g.lk_pad);
    pack_rows(x.v, p.v.row, g.lk, g.dv, 1.0f, values, g.dv_pad);
    pair_up_rows(values, g.lk, g.dv_pad, g.dv_pad, value_pairs, g.dv_pad);

    for (int64_t i0 = 0; i0 < g.lq; i0 += g.block) {
      const QueryBlock blk(p, g, x, i0);
      const int64_t rows = blk.rows, visible = blk.visible, cols = blk.cols;
      pack_rows(x.q + i0 * p.q.row, p.q.row, rows, g.dk, p.scale, queries, g.dk_pad, x.q_turn, i0);
      round_row(queries, rows * g.dk_pad, queries_bf16);
      gemm(rows, cols, dim_pairs, as_words(queries_bf16), g.dk_pad / 2, 1, key_pairs_t, g.lk_pad,
           logits, g.lk_pad, false);
      for (int64_t r = 0; r < rows; ++r) {
        attention_weights_row(p, dropout, pair, i0 + r, visible, cols, logits + r * g.lk_pad);
        round_row(logits + r * g.lk_pad, cols, weights_bf16 + r * g.lk_pad);
      }
      // Weights past `visible` are 0, so a pair straddling it adds nothing.
      gemm(rows, g.dv_pad, (visible + 1) / 2, as_words(weights_bf16), g.lk_pad / 2, 1, value_pairs,
           g.dv_pad, mixed, g.dv_pad, false);
      store_output_rows(p, g, blk, mixed, x.out);
    }
  }
}

void backward_pairs_bf16(const AttentionProblem& p, int64_t first, int64_t last, float* grad_bias) {
  const FlushDenormalsToZero flush_denormals;
  const Geometry g(p);
  const int64_t key_pairs = (g.lk + 1) / 2, block_pairs = (g.block + 1) / 2;
  const int64_t dim_pairs = (g.dk + 1) / 2, value_dim_pairs = (g.dv + 1) / 2;
  Scratch scratch(Scratch::size({g.lk * g.dk_pad,
                                 g.dk * g.lk_pad,
                                 dim_pairs * g.lk_pad,
                                 key_pairs * g.dk_pad,
                                 g.dv * g.lk_pad,
                                 value_dim_pairs * g.lk_pad,
                                 g.block * g.dk_pad,
                                 (g.block * g.dk_pad + 1) / 2,
                                 block_pairs * g.dk_pad,
                                 g.block * g.dv_pad,
                                 (g.block * g.dv_pad + 1) / 2,
                                 block_pairs * g.dv_pad,
                                 g.block * g.lk_pad,
                                 g.block * g.lk_pad,
                                 block_pairs * g.lk_pad,
                                 block_pairs * g.lk_pad,
                                 (g.block * g.lk_pad + 1) / 2,
                                 g.block * g.dk_pad,
                                 g.dk * g.lk_pad,
                                 g.dv * g.lk_pad,
                                 g.block,
                                 g.lk * g.dk}));
  float* keys = scratch.take(g.lk * g.dk_pad);                            // K, turned [lk][dk_pad]
  float* keys_t = scratch.take(g.dk * g.lk_pad);                          // K^T [dk][lk_pad]
  Word* key_pairs_t = take_words(scratch, dim_pairs * g.lk_pad);          // K^T, row pairs: S
  Word* key_row_pairs = take_words(scratch, key_pairs * g.dk_pad);        // K, row pairs: dQ
  float* values_t = scratch.take(g.dv * g.lk_pad);                        // V^T [dv][lk_pad]
  Word* value_pairs_t = take_words(scratch, value_dim_pairs * g.lk_pad);  // V^T, row pairs
  float* queries = scratch.take(g.block * g.dk_pad);                      // scale * Q block
  Half* queries_bf16 = take_halves(scratch, g.block * g.dk_pad);
  Word* query_pairs = take_words(scratch, block_pairs * g.dk_pad);  // Q, row pairs: dK^T
  float* grad_mixed = scratch.take(g.block * g.dv_pad);             // dO block
  Half* grad_mixed_bf16 = take_halves(scratch, g.block * g.dv_pad);
  Word* grad_mixed_pairs = take_words(scratch, block_pairs * g.dv_pad);  // dO, row pairs: dV^T
  float* probs = scratch.take(g.block * g.lk_pad);                       // S, then dropout(P)
  float* grad_logits = scratch.take(g.block * g.lk_pad);                 // dPd, then dS
  Word* prob_pairs = take_words(scratch, block_pairs * g.lk_pad);        // dropout(P), row pairs
  Word* grad_logit_pairs = take_words(scratch, block_pairs * g.lk_pad);  // dS, row pairs
  Half* grad_logits_bf16 = take_halves(scratch, g.block * g.lk_pad);     // dS rows
  float* grad_queries = scratch.take(g.block * g.dk_pad);
  float* grad_keys_t = scratch.take(g.dk * g.lk_pad);    // dK^T [dk][lk_pad], float32 sums
  float* grad_values_t = scratch.take(g.dv * g.lk_pad);  // dV^T [dv][lk_pad], float32 sums
  float* out_dot_grad = scratch.take(g.block);           // rowsum(dO * O)
  float* key_rows = scratch.take(g.lk * g.dk);           // dK's rows before their turn (RoPE)
  const WeightDropout dropout(p.dropout_p);

  for (int64_t pair = first; pair < last; ++pair) {
    const PairOperands x(p, pair);
    pack_rows(x.k, p.k.row, g.lk, g.dk, 1.0f, keys, g.dk_pad, x.k_turn);
    pack_transposed(keys, g.dk_pad, g.lk, g.dk, keys_t, g.lk_pad);  // turned once, above
    pair_up_rows(keys_t, g.dk, g.lk_pad, g.lk_pad, key_pairs_t, g.lk_pad);
    pair_up_rows(keys, g.lk, g.dk_pad, g.dk_pad, key_row_pairs, g.dk_pad);
    pack_transposed(x.v, p.v.row, g.lk, g.dv, values_t, g.lk_pad);
    pair_up_rows(values_t, g.dv, g.lk_pad, g.lk_pad, value_pairs_t, g.lk_pad);
    fill_zero(grad_keys_t, grad_keys_t + g.dk * g.lk_pad);
    fill_zero(grad_values_t, grad_values_t + g.dv * g.lk_pad);

    for (int64_t i0 = 0; i0 < g.lq; i0 += g.block) {
      const QueryBlock blk(p, g, x, i0);
      const int64_t rows = blk.rows, visible = blk.visible, cols = blk.cols;
      if (visible == 0) {
        zero_query_gradients(p, g, x, blk);
        continue;
      }
      const int64_t row_pairs = (rows + 1) / 2;
      pack_rows(x.q + i0 * p.q.row, p.q.row, rows, g.dk, p.scale, queries, g.dk_pad, x.q_turn, i0);
      round_row(queries, rows * g.dk_pad, queries_bf16);
      pack_output_gradient(p, g, x, blk, grad_mixed, out_dot_grad);
      round_row(grad_mixed, rows * g.dv_pad, grad_mixed_bf16);
      gemm(rows, cols, dim_pairs, as_words(queries_bf16), g.dk_pad / 2, 1, key_pairs_t, g.lk_pad,
           probs, g.lk_pad, false);
      gemm(rows, cols, value_dim_pairs, as_words(grad_mixed_bf16), g.dv_pad / 2, 1, value_pairs_t,
           g.lk_pad, grad_logits, g.lk_pad, false);
      for (int64_t r = 0; r < rows; ++r) {
        float* ds = grad_logits + r * g.lk_pad;
        weight_gradient_row(p, dropout, pair, i0 + r, visible, cols, out_dot_grad[r],
                            probs + r * g.lk_pad, ds, grad_bias);
        round_row(ds, cols, grad_logits_bf16 + r * g.lk_pad);
      }
      // dV^T += dO^T Pd and dK^T += (scale Q)^T dS, summed over the block's rows in pairs: the
      // left operands are dO's and Q's row pairs read transposed (a_row = 1). Columns
      // [visible, cols) add exact zeros (their P and dS are 0).
      pair_up_rows(probs, rows, g.lk_pad, cols, prob_pairs, g.lk_pad);
      pair_up_rows(grad_logits, rows, g.lk_pad, cols, grad_logit_pairs, g.lk_pad);
      pair_up_rows(grad_mixed, rows, g.dv_pad, g.dv_pad, grad_mixed_pairs, g.dv_pad);
      pair_up_rows(queries, rows, g.dk_pad, g.dk_pad, query_pairs, g.dk_pad);
      gemm(g.dv, cols, row_pairs, grad_mixed_pairs, 1, g.dv_pad, prob_pairs, g.lk_pad,
           grad_values_t, g.lk_pad, true);
      gemm(g.dk, cols, row_pairs, query_pairs, 1, g.dk_pad, grad_logit_pairs, g.lk_pad, grad_keys_t,
           g.lk_pad, true);
      // dQ = scale dS K (dS is 0 past `visible`, so a pair straddling it adds nothing).
      gemm(rows, g.dk_pad, (visible + 1) / 2, as_words(grad_logits_bf16), g.lk_pad / 2, 1,
           key_row_pairs, g.dk_pad, grad_queries, g.dk_pad, false);
      store_query_gradients(p, g, x, blk, grad_queries);
    }
    store_key_value_gradients(p, g, x, grad_keys_t, grad_values_t, key_rows);
  }
}

}  // namespace

const KernelTable& bf16_kernel_table() {
  static const KernelTable table{"avx512bf16", forward_pairs_bf16, backward_pairs_bf16,
                                 kernel_table().dropout};
  return table;
}

}  // namespace pelab::kernels::PELAB_KERNEL_ISA
