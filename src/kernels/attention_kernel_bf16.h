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
// (B[k][n], B[k+1][n]) along n. AMX's TDPBF16PS reads the same two layouts, a tile at a time, so
// the kernels are templates over the product routine: vdpbf16_product (register tiles, compiled
// into attention_kernel_avx512bf16.cpp) or amx_product (attention_kernel_amx.cpp). Every left
// operand is therefore stored as rows of Words along the summed axis (a_k = 1), and every
// operand is padded with zeros to whole AMX steps of kTileStepPairs pairs.
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

// Rows [rows, padded_rows) of a row-pair operand [.][out_ld] set to zero. A tile step that runs
// past the summed axis's end multiplies them by the left operand's zero padding, and 0 times
// what scratch held before (-inf logits of an earlier call, say) could be NaN.
void zero_pair_rows(Word* out, int64_t rows, int64_t padded_rows, int64_t out_ld) {
  for (Word* w = out + rows * out_ld; w < out + padded_rows * out_ld; ++w) *w = 0;
}

// Rows [0, rows) of src [.][ld] turned and rounded: out[d][j] = bf16(src[j][d]) for d < dims,
// j < rows, zero for j in [rows, out_ld) (float32 staging in `staged`, [dims][out_ld]). The left
// operand of the products that sum over the block's rows, read as Words along them.
void round_transposed(const float* src, int64_t rows, int64_t ld, int64_t dims, float* staged,
                      int64_t out_ld, Half* out) {
  pack_transposed(src, ld, rows, dims, staged, out_ld);
  round_row(staged, dims * out_ld, out);
}

const Word* as_words(const Half* bf16_row) { return reinterpret_cast<const Word*>(bf16_row); }

// The summed axis of every product, in pairs, padded to whole tile steps: AMX multiplies
// kTileStepPairs (8) pairs of [16 x 32-byte] and [8 x 64-byte] tiles at a time.
constexpr int64_t kTileStepPairs = 8;
inline int64_t padded_pairs(int64_t values) { return round_up((values + 1) / 2, kTileStepPairs); }

// C (+)= A B over Words (a_k = 1), VDPBF16PS register tiles.
inline void vdpbf16_product(int64_t M, int64_t N, int64_t K, const Word* A, int64_t a_row,
                            const Word* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  gemm(M, N, K, A, a_row, 1, B, ldb, C, ldc, accumulate);
}

// Scratch handed out as bf16 values or Words.
Half* take_halves(Scratch& scratch, int64_t n) {
  return reinterpret_cast<Half*>(scratch.take((n + 1) / 2));
}
Word* take_words(Scratch& scratch, int64_t n) { return reinterpret_cast<Word*>(scratch.take(n)); }

// Where a product sums over d (S = Q K^T, dPd = dO V^T), the right operand comes from the
// float32 transposes the float32 kernels pack (K^T, V^T: rows d), paired up; the left one is the
// block's rows rounded in place, read as Words. Where it sums over the block's rows (dV^T, dK^T),
// the left operand is dO^T or Q^T rounded, [dims][block_pad], read as Words along the rows; the
// right one is Pd's or dS's rows paired up. Every operand rounds the same float32 values with the
// same instruction, so a value used twice is the same bf16 twice.
template <auto Product>
void forward_pairs_bf16(const AttentionProblem& p, int64_t first, int64_t last) {
  const FlushDenormalsToZero flush_denormals;
  const Geometry g(p);
  const int64_t key_pairs = (g.lk + 1) / 2, dim_pairs = (g.dk + 1) / 2;
  const int64_t key_pairs_pad = padded_pairs(g.lk), dim_pairs_pad = padded_pairs(g.dk);
  Scratch scratch(Scratch::size({g.dk * g.lk_pad, dim_pairs_pad * g.lk_pad, g.lk * g.dv_pad,
                                 key_pairs_pad * g.dv_pad, g.block * g.dk_pad,
                                 (g.block * g.dk_pad + 1) / 2, g.block * g.lk_pad,
                                 (g.block * g.lk_pad + 1) / 2, g.block * g.dv_pad, kWidth * g.dk}));
  float* keys_t = scratch.take(g.dk * g.lk_pad);                      // K^T [dk][lk_pad], turned
  Word* key_pairs_t = take_words(scratch, dim_pairs_pad * g.lk_pad);  // K^T, row pairs
  float* values = scratch.take(g.lk * g.dv_pad);                      // V [lk][dv_pad]
  Word* value_pairs = take_words(scratch, key_pairs_pad * g.dv_pad);  // V, row pairs
  float* queries = scratch.take(g.block * g.dk_pad);                  // scale * Q block
  Half* queries_bf16 = take_halves(scratch, g.block * g.dk_pad);      // [block][dk_pad]
  float* logits = scratch.take(g.block * g.lk_pad);                   // S, then dropout(P)
  Half* weights_bf16 = take_halves(scratch, g.block * g.lk_pad);      // dropout(P) [block][lk_pad]
  float* mixed = scratch.take(g.block * g.dv_pad);                    // O block
  float* key_rows = scratch.take(kWidth * g.dk);                      // a tile's turned key rows
  const WeightDropout dropout(p.dropout_p);

  for (int64_t pair = first; pair < last; ++pair) {
    const PairOperands x(p, pair);
    pack_transposed(x.k, p.k.row, g.lk, g.dk, keys_t, g.lk_pad, x.k_turn, key_rows);
    pair_up_rows(keys_t, g.dk, g.lk_pad, g.lk_pad, key_pairs_t, g.lk_pad);
    zero_pair_rows(key_pairs_t, dim_pairs, dim_pairs_pad, g.lk_pad);
    pack_rows(x.v, p.v.row, g.lk, g.dv, 1.0f, values, g.dv_pad);
    pair_up_rows(values, g.lk, g.dv_pad, g.dv_pad, value_pairs, g.dv_pad);
    zero_pair_rows(value_pairs, key_pairs, key_pairs_pad, g.dv_pad);

    for (int64_t i0 = 0; i0 < g.lq; i0 += g.block) {
      const QueryBlock blk(p, g, x, i0);
      const int64_t rows = blk.rows, visible = blk.visible, cols = blk.cols;
      pack_rows(x.q + i0 * p.q.row, p.q.row, rows, g.dk, p.scale, queries, g.dk_pad, x.q_turn, i0);
      round_row(queries, rows * g.dk_pad, queries_bf16);
      Product(rows, cols, dim_pairs, as_words(queries_bf16), g.dk_pad / 2, key_pairs_t, g.lk_pad,
              logits, g.lk_pad, false);
      for (int64_t r = 0; r < rows; ++r) {
        attention_weights_row(p, dropout, pair, i0 + r, visible, cols, logits + r * g.lk_pad);
        round_row(logits + r * g.lk_pad, cols, weights_bf16 + r * g.lk_pad);
      }
      // Weights past `visible` are 0 (up to cols), so a pair straddling it adds nothing.
      Product(rows, g.dv_pad, (visible + 1) / 2, as_words(weights_bf16), g.lk_pad / 2, value_pairs,
              g.dv_pad, mixed, g.dv_pad, false);
      store_output_rows(p, g, blk, mixed, x.out);
    }
  }
}

template <auto Product>
void backward_pairs_bf16(const AttentionProblem& p, int64_t first, int64_t last, float* grad_bias) {
  const FlushDenormalsToZero flush_denormals;
  const Geometry g(p);
  const int64_t key_pairs = (g.lk + 1) / 2, dim_pairs = (g.dk + 1) / 2;
  const int64_t value_dim_pairs = (g.dv + 1) / 2;
  const int64_t key_pairs_pad = padded_pairs(g.lk), dim_pairs_pad = padded_pairs(g.dk);
  const int64_t value_dim_pairs_pad = padded_pairs(g.dv);
  // The block's rows as the summed axis of dV^T and dK^T: padded to whole tile steps.
  const int64_t block_pad = 2 * padded_pairs(g.block), block_pairs_pad = block_pad / 2;
  const int64_t dims = max_of(g.dk, g.dv);
  Scratch scratch(Scratch::size({g.lk * g.dk_pad,
                                 g.dk * g.lk_pad,
                                 dim_pairs_pad * g.lk_pad,
                                 key_pairs_pad * g.dk_pad,
                                 g.dv * g.lk_pad,
                                 value_dim_pairs_pad * g.lk_pad,
                                 g.block * g.dk_pad,
                                 (g.block * g.dk_pad + 1) / 2,
                                 (g.dk * block_pad + 1) / 2,
                                 g.block * g.dv_pad,
                                 (g.block * g.dv_pad + 1) / 2,
                                 (g.dv * block_pad + 1) / 2,
                                 dims * block_pad,
                                 g.block * g.lk_pad,
                                 g.block * g.lk_pad,
                                 block_pairs_pad * g.lk_pad,
                                 block_pairs_pad * g.lk_pad,
                                 (g.block * g.lk_pad + 1) / 2,
                                 g.block * g.dk_pad,
                                 g.dk * g.lk_pad,
                                 g.dv * g.lk_pad,
                                 g.block,
                                 g.lk * g.dk}));
  float* keys = scratch.take(g.lk * g.dk_pad);                          // K, turned [lk][dk_pad]
  float* keys_t = scratch.take(g.dk * g.lk_pad);                        // K^T [dk][lk_pad]
  Word* key_pairs_t = take_words(scratch, dim_pairs_pad * g.lk_pad);    // K^T, row pairs: S
  Word* key_row_pairs = take_words(scratch, key_pairs_pad * g.dk_pad);  // K, row pairs: dQ
  float* values_t = scratch.take(g.dv * g.lk_pad);                      // V^T [dv][lk_pad]
  Word* value_pairs_t = take_words(scratch, value_dim_pairs_pad * g.lk_pad);  // V^T, row pairs
  float* queries = scratch.take(g.block * g.dk_pad);                          // scale * Q block
  Half* queries_bf16 = take_halves(scratch, g.block * g.dk_pad);
  Half* queries_t_bf16 = take_halves(scratch, g.dk * block_pad);  // (scale Q)^T: dK^T
  float* grad_mixed = scratch.take(g.block * g.dv_pad);           // dO block
  Half* grad_mixed_bf16 = take_halves(scratch, g.block * g.dv_pad);
  Half* grad_mixed_t_bf16 = take_halves(scratch, g.dv * block_pad);    // dO^T: dV^T
  float* staged_t = scratch.take(dims * block_pad);                    // a transpose in float32
  float* probs = scratch.take(g.block * g.lk_pad);                     // S, then dropout(P)
  float* grad_logits = scratch.take(g.block * g.lk_pad);               // dPd, then dS
  Word* prob_pairs = take_words(scratch, block_pairs_pad * g.lk_pad);  // dropout(P), row pairs
  Word* grad_logit_pairs = take_words(scratch, block_pairs_pad * g.lk_pad);  // dS, row pairs
  Half* grad_logits_bf16 = take_halves(scratch, g.block * g.lk_pad);         // dS rows
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
    zero_pair_rows(key_pairs_t, dim_pairs, dim_pairs_pad, g.lk_pad);
    pair_up_rows(keys, g.lk, g.dk_pad, g.dk_pad, key_row_pairs, g.dk_pad);
    zero_pair_rows(key_row_pairs, key_pairs, key_pairs_pad, g.dk_pad);
    pack_transposed(x.v, p.v.row, g.lk, g.dv, values_t, g.lk_pad);
    pair_up_rows(values_t, g.dv, g.lk_pad, g.lk_pad, value_pairs_t, g.lk_pad);
    zero_pair_rows(value_pairs_t, value_dim_pairs, value_dim_pairs_pad, g.lk_pad);
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
      Product(rows, cols, dim_pairs, as_words(queries_bf16), g.dk_pad / 2, key_pairs_t, g.lk_pad,
              probs, g.lk_pad, false);
      Product(rows, cols, value_dim_pairs, as_words(grad_mixed_bf16), g.dv_pad / 2, value_pairs_t,
              g.lk_pad, grad_logits, g.lk_pad, false);
      for (int64_t r = 0; r < rows; ++r) {
        float* ds = grad_logits + r * g.lk_pad;
        weight_gradient_row(p, dropout, pair, i0 + r, visible, cols, out_dot_grad[r],
                            probs + r * g.lk_pad, ds, grad_bias);
        round_row(ds, cols, grad_logits_bf16 + r * g.lk_pad);
      }
      // dV^T += dO^T Pd and dK^T += (scale Q)^T dS, summed over the block's rows in pairs.
      // Columns [visible, cols) add exact zeros (their P and dS are 0).
      pair_up_rows(probs, rows, g.lk_pad, cols, prob_pairs, g.lk_pad);
      zero_pair_rows(prob_pairs, row_pairs, padded_pairs(rows), g.lk_pad);
      pair_up_rows(grad_logits, rows, g.lk_pad, cols, grad_logit_pairs, g.lk_pad);
      zero_pair_rows(grad_logit_pairs, row_pairs, padded_pairs(rows), g.lk_pad);
      round_transposed(grad_mixed, rows, g.dv_pad, g.dv, staged_t, block_pad, grad_mixed_t_bf16);
      round_transposed(queries, rows, g.dk_pad, g.dk, staged_t, block_pad, queries_t_bf16);
      Product(g.dv, cols, row_pairs, as_words(grad_mixed_t_bf16), block_pad / 2, prob_pairs,
              g.lk_pad, grad_values_t, g.lk_pad, true);
      Product(g.dk, cols, row_pairs, as_words(queries_t_bf16), block_pad / 2, grad_logit_pairs,
              g.lk_pad, grad_keys_t, g.lk_pad, true);
      // dQ = scale dS K (dS is 0 past `visible`, up to cols, so a pair straddling it adds nothing).
      Product(rows, g.dk_pad, (visible + 1) / 2, as_words(grad_logits_bf16), g.lk_pad / 2,
              key_row_pairs, g.dk_pad, grad_queries, g.dk_pad, false);
      store_query_gradients(p, g, x, blk, grad_queries);
    }
    store_key_value_gradients(p, g, x, grad_keys_t, grad_values_t, key_rows);
  }
}

}  // namespace
}  // namespace pelab::kernels::PELAB_KERNEL_ISA
