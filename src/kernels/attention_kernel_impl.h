// The fused attention kernels (attention_kernel.h states the maths), written once over the
// vector operations of simd.h and compiled once per instruction set: each
// attention_kernel_<isa>.cpp defines PELAB_KERNEL_ISA and includes this file.
//
// All matrix products are one register-tiled routine, gemm(): C (+)= A B with B's rows
// contiguous and vectorised along C's columns, A read through two strides so that the same
// routine serves A and A^T. Operands are first packed into per-thread scratch, padded with
// zeros to whole vectors, so the inner loops have no tails.
//
// No standard-library templates here (std::vector, std::fill, std::min, ...): their out-of-line
// copies are weak symbols, and the linker could hand an AVX-512 build of one to the rest of the
// program on a CPU without AVX-512. Everything below is in a namespace of its own per ISA.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <new>

#include "kernels/attention_kernel.h"
#include "kernels/rotary_turn.h"
#include "kernels/simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace pelab::kernels::PELAB_KERNEL_ISA {
namespace {

constexpr float kNegInf = -__builtin_inff();
// Query rows per block: the logits block [32, Lk] stays in L1/L2 and a causal mask lets whole
// key ranges above the diagonal drop out of each block.
constexpr int64_t kQueryBlock = 32;

inline int64_t round_up(int64_t n, int64_t multiple) {
  return (n + multiple - 1) / multiple * multiple;
}
inline int64_t min_of(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max_of(int64_t a, int64_t b) { return a > b ? a : b; }
inline void fill_zero(float* begin, float* end) {
  for (float* x = begin; x < end; ++x) *x = 0.0f;
}
inline void copy_floats(const float* begin, const float* end, float* out) {
  for (const float* x = begin; x < end; ++x) *out++ = *x;
}

// Flush-to-zero and denormals-are-zero while a kernel runs, restored on return. A bias such as
// ALiBi's with the paper's slopes (up to 1 per position, 127 positions) drives probabilities to
// 1e-30 and below; their products with gradients fall into float's denormal range, where x86
// takes a slow microcode path for every operation touching them (measured: the paper preset's
// ALiBi attention backward ran 2.5x slower than RoPE's, docs/PERFORMANCE.md). Results under
// 1.2e-38 become 0, far below float32's resolution of any sum they enter.
class FlushDenormalsToZero {
 public:
#if defined(__x86_64__) || defined(__i386__)
  FlushDenormalsToZero() : saved_(_mm_getcsr()) {
    _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero);
  }
  ~FlushDenormalsToZero() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

// C[r][v] (+)= sum_k A[r*a_row + k*a_k] * B[k*ldb + v] for an RB x VB-vector register tile.
template <int RB, int VB>
inline void gemm_tile(int64_t K, const float* A, int64_t a_row, int64_t a_k, const float* B,
                      int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  VecF acc[RB][VB];
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < VB; ++v) acc[r][v] = accumulate ? vload(C + r * ldc + v * kWidth) : vzero();
  for (int64_t k = 0; k < K; ++k) {
    VecF b[VB];
#pragma GCC unroll 4
    for (int v = 0; v < VB; ++v) b[v] = vload(B + k * ldb + v * kWidth);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) {
      const VecF a = vset1(A[r * a_row + k * a_k]);
#pragma GCC unroll 4
      for (int v = 0; v < VB; ++v) acc[r][v] = vfmadd(a, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < VB; ++v) vstore(C + r * ldc + v * kWidth, acc[r][v]);
}

// One panel of VB vectors of columns, all M rows: RB-row tiles, then 4-row, then single rows.
template <int RB, int VB>
void gemm_panel(int64_t M, int64_t K, const float* A, int64_t a_row, int64_t a_k, const float* B,
                int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  int64_t m = 0;
  for (; m + RB <= M; m += RB)
    gemm_tile<RB, VB>(K, A + m * a_row, a_row, a_k, B, ldb, C + m * ldc, ldc, accumulate);
  if constexpr (RB > 4)
    for (; m + 4 <= M; m += 4)
      gemm_tile<4, VB>(K, A + m * a_row, a_row, a_k, B, ldb, C + m * ldc, ldc, accumulate);
  for (; m < M; ++m)
    gemm_tile<1, VB>(K, A + m * a_row, a_row, a_k, B, ldb, C + m * ldc, ldc, accumulate);
}

// C[m][n] (+)= sum_k A(m, k) B[k][n] for m < M, n < N, k < K, where A(m, k) = A[m*a_row + k*a_k]
// and N is a multiple of kWidth. Tiles sized to the register file: AVX-512 has 32 vector
// registers, AVX2 16.
void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_row, int64_t a_k,
          const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t m = 0; m < M; ++m) fill_zero(C + m * ldc, C + m * ldc + N);
    return;
  }
  constexpr int kWideVectors = kWidth == 8 ? 2 : 4;
  const int64_t vectors = N / kWidth;
  int64_t v = 0;
  for (; v + kWideVectors <= vectors; v += kWideVectors)
    gemm_panel<4, kWideVectors>(M, K, A, a_row, a_k, B + v * kWidth, ldb, C + v * kWidth, ldc,
                                accumulate);
  if (kWideVectors > 2 && v + 2 <= vectors) {
    gemm_panel<8, 2>(M, K, A, a_row, a_k, B + v * kWidth, ldb, C + v * kWidth, ldc, accumulate);
    v += 2;
  }
  for (; v < vectors; ++v)
    gemm_panel<8, 1>(M, K, A, a_row, a_k, B + v * kWidth, ldb, C + v * kWidth, ldc, accumulate);
}

// Per-thread scratch, 64-byte aligned sub-buffers handed out in order.
class Scratch {
 public:
  explicit Scratch(int64_t floats) {
    struct Storage {
      float* data = nullptr;
      int64_t size = 0;
      ~Storage() { std::free(data); }
    };
    thread_local Storage storage;
    if (storage.size < floats) {
      std::free(storage.data);
      storage.data = static_cast<float*>(std::aligned_alloc(64, round_up(floats, 16) * 4));
      if (!storage.data) throw std::bad_alloc();
      storage.size = floats;
    }
    next_ = storage.data;
  }
  float* take(int64_t floats) {
    float* out = next_;
    next_ += round_up(floats, 16);
    return out;
  }
  static int64_t size(std::initializer_list<int64_t> parts) {
    int64_t total = 0;
    for (int64_t p : parts) total += round_up(p, 16);
    return total;
  }

 private:
  float* next_;
};

// Dimensions shared by forward and backward.
struct Geometry {
  int64_t lq, lk, dk, dv, lk_pad, dk_pad, dv_pad, block;
  explicit Geometry(const AttentionProblem& p)
      : lq(p.q_len),
        lk(p.k_len),
        dk(p.qk_dim),
        dv(p.v_dim),
        lk_pad(round_up(p.k_len, kWidth)),
        dk_pad(round_up(p.qk_dim, kWidth)),
        dv_pad(round_up(p.v_dim, kWidth)),
        block(min_of(p.q_len, kQueryBlock)) {}
};

const float* mask_row(const AttentionProblem& p, int64_t b, int64_t h, int64_t i) {
  return p.mask.data ? p.mask.data + b * p.mask.batch + h * p.mask.head + i * p.mask.row : nullptr;
}

// One past the last key that any of the block's query rows may see (all keys without a mask).
int64_t visible_keys(const AttentionProblem& p, int64_t b, int64_t h, int64_t i0, int64_t rows) {
  if (!p.mask.data) return p.k_len;
  int64_t end = 0;
  const int64_t distinct_rows = p.mask.row == 0 ? 1 : rows;
  for (int64_t r = 0; r < distinct_rows; ++r) {
    const float* m = mask_row(p, b, h, i0 + r);
    int64_t j = p.k_len;
    while (j > end && m[j - 1] == kNegInf) --j;
    end = max_of(end, j);
  }
  return end;
}

inline uint32_t dropout_row_key(uint64_t seed, int64_t pair, int64_t row, int64_t q_len) {
  // splitmix64 of (seed, row number): independent streams per (batch, head, query row).
  uint64_t z = seed + (static_cast<uint64_t>(pair * q_len + row) + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return static_cast<uint32_t>(z ^ (z >> 31));
}

inline uint32_t dropout_threshold24(float p) {
  return static_cast<uint32_t>(static_cast<double>(p) * 16777216.0 + 0.5);
}

// s[0, visible) += bias + mask; s[visible, cols) = -inf.
void add_bias_and_mask(float* s, int64_t visible, int64_t cols, const float* bias,
                       const float* mask) {
  int64_t j = 0;
  if (bias || mask) {
    for (; j + kWidth <= visible; j += kWidth) {
      VecF x = vload(s + j);
      if (bias) x = vadd(x, vload(bias + j));
      if (mask) x = vadd(x, vload(mask + j));
      vstore(s + j, x);
    }
    for (; j < visible; ++j) s[j] += (bias ? bias[j] : 0.0f) + (mask ? mask[j] : 0.0f);
  }
  for (j = visible; j < cols; ++j) s[j] = kNegInf;
}

// Packs rows [0, rows) x cols [0, dims) of a strided matrix into dst[rows][ld] (turned by table
// rows first_row.. when `turn` has tables, then times `scale`), zero-filling columns [dims, ld).
void pack_rows(const float* src, int64_t src_row, int64_t rows, int64_t dims, float scale,
               float* dst, int64_t ld, const RowTurn& turn = {}, int64_t first_row = 0) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = src + r * src_row;
    float* out = dst + r * ld;
    if (turn.cos) {
      turn_row<false>(in, turn, first_row + r, dims, out);
      in = out;
    }
    for (int64_t d = 0; d < dims; ++d) out[d] = in[d] * scale;
    for (int64_t d = dims; d < ld; ++d) out[d] = 0.0f;
  }
}

// Packs the transpose: dst[d][j] = src[j][d] for j < rows (row j turned by table row j when
// `turn` has tables, through `row_buffer`, dims floats), zero for j in [rows, ld).
void pack_transposed(const float* src, int64_t src_row, int64_t rows, int64_t dims, float* dst,
                     int64_t ld, const RowTurn& turn = {}, float* row_buffer = nullptr) {
  for (int64_t d = 0; d < dims; ++d) fill_zero(dst + d * ld + rows, dst + (d + 1) * ld);
  for (int64_t j = 0; j < rows; ++j) {
    const float* in = src + j * src_row;
    if (turn.cos) {
      turn_row<false>(in, turn, j, dims, row_buffer);
      in = row_buffer;
    }
    for (int64_t d = 0; d < dims; ++d) dst[d * ld + j] = in[d];
  }
}

void forward_pairs(const AttentionProblem& p, int64_t first, int64_t last) {
  const FlushDenormalsToZero flush_denormals;
  const Geometry g(p);
  Scratch scratch(Scratch::size({g.dk * g.lk_pad, g.lk * g.dv_pad, g.block * g.dk,
                                 g.block * g.lk_pad, g.block * g.dv_pad, g.dk}));
  float* keys_t = scratch.take(g.dk * g.lk_pad);     // K^T [dk][lk_pad]
  float* values = scratch.take(g.lk * g.dv_pad);     // V [lk][dv_pad]
  float* queries = scratch.take(g.block * g.dk);     // scale * Q block [block][dk]
  float* logits = scratch.take(g.block * g.lk_pad);  // S, then P, then dropout(P)
  float* mixed = scratch.take(g.block * g.dv_pad);   // O block
  float* key_row = scratch.take(g.dk);               // one turned key row (RoPE)
  const bool dropout = p.dropout_p > 0.0f;
  const uint32_t threshold = dropout_threshold24(p.dropout_p);
  const float keep_scale = dropout ? 1.0f / (1.0f - p.dropout_p) : 1.0f;

  for (int64_t pair = first; pair < last; ++pair) {
    const int64_t b = pair / p.heads, h = pair % p.heads;
    const float* q = p.q.data + b * p.q.batch + h * p.q.head;
    const float* k = p.k.data + b * p.k.batch + h * p.k.head;
    const float* v = p.v.data + b * p.v.batch + h * p.v.head;
    float* out = p.out + b * p.out_batch + h * p.out_head;
    const RowTurn q_turn = query_turn(p, h);
    pack_transposed(k, p.k.row, g.lk, g.dk, keys_t, g.lk_pad, key_turn(p, h), key_row);
    pack_rows(v, p.v.row, g.lk, g.dv, 1.0f, values, g.dv_pad);

    for (int64_t i0 = 0; i0 < g.lq; i0 += g.block) {
      const int64_t rows = min_of(g.block, g.lq - i0);
      const int64_t visible = visible_keys(p, b, h, i0, rows);
      const int64_t cols = round_up(visible, kWidth);
      pack_rows(q + i0 * p.q.row, p.q.row, rows, g.dk, p.scale, queries, g.dk, q_turn, i0);
      gemm(rows, cols, g.dk, queries, g.dk, 1, keys_t, g.lk_pad, logits, g.lk_pad, false);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = i0 + r;
        float* s = logits + r * g.lk_pad;
        add_bias_and_mask(s, visible, cols, p.bias ? p.bias + (h * g.lq + i) * g.lk : nullptr,
                          mask_row(p, b, h, i));
        VecF running_max = vset1(kNegInf);
        for (int64_t j = 0; j < cols; j += kWidth) running_max = vmax(running_max, vload(s + j));
        const float row_max = cols ? vmaxall(running_max) : kNegInf;
        float inv_sum = 0.0f;
        if (row_max != kNegInf) {
          const VecF shift = vset1(row_max);
          VecF sum = vzero();
          for (int64_t j = 0; j < cols; j += kWidth) {
            const VecF e = vexp_nonpositive(vsub(vload(s + j), shift));
            vstore(s + j, e);
            sum = vadd(sum, e);
          }
          inv_sum = 1.0f / vsum(sum);
        }
        // A row that sees no key at all gets zero weights (the explicit path gives NaN).
        const VecF factor = vset1(inv_sum * keep_scale);
        const uint32_t row_key = dropout ? dropout_row_key(p.dropout_seed, pair, i, g.lq) : 0;
        for (int64_t j = 0; j < cols; j += kWidth) {
          VecF x = vmul(vload(s + j), factor);
          if (dropout) x = vkeep(dropout_keep(row_key, static_cast<uint32_t>(j), threshold), x);
          vstore(s + j, x);
        }
        if (p.row_max) {
          p.row_max[pair * g.lq + i] = row_max == kNegInf ? 0.0f : row_max;
          p.row_inv_sum[pair * g.lq + i] = inv_sum;
        }
      }
      gemm(rows, g.dv_pad, visible, logits, g.lk_pad, 1, values, g.dv_pad, mixed, g.dv_pad, false);
      for (int64_t r = 0; r < rows; ++r)
        copy_floats(mixed + r * g.dv_pad, mixed + r * g.dv_pad + g.dv, out + (i0 + r) * p.out_row);
    }
  }
}

void backward_pairs(const AttentionProblem& p, int64_t first, int64_t last, float* grad_bias) {
  const FlushDenormalsToZero flush_denormals;
  const Geometry g(p);
  Scratch scratch(
      Scratch::size({g.dk * g.lk_pad, g.lk * g.dk_pad, g.dv * g.lk_pad, g.block * g.dk_pad,
                     g.block * g.dv_pad, g.block * g.lk_pad, g.block * g.lk_pad, g.block * g.dk_pad,
                     g.dk * g.lk_pad, g.dv * g.lk_pad, g.block, g.dk}));
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
  float* key_row = scratch.take(g.dk);                   // one dK row (RoPE)
  const bool dropout = p.dropout_p > 0.0f;
  const uint32_t threshold = dropout_threshold24(p.dropout_p);
  const float keep_scale = dropout ? 1.0f / (1.0f - p.dropout_p) : 1.0f;

  for (int64_t pair = first; pair < last; ++pair) {
    const int64_t b = pair / p.heads, h = pair % p.heads;
    const float* q = p.q.data + b * p.q.batch + h * p.q.head;
    const float* k = p.k.data + b * p.k.batch + h * p.k.head;
    const float* v = p.v.data + b * p.v.batch + h * p.v.head;
    const float* out = p.out + b * p.out_batch + h * p.out_head;
    const float* grad_out = p.grad_out + b * p.grad_out_batch + h * p.grad_out_head;
    const RowTurn q_turn = query_turn(p, h), k_turn = key_turn(p, h);
    pack_rows(k, p.k.row, g.lk, g.dk, 1.0f, keys, g.dk_pad, k_turn);
    pack_transposed(keys, g.dk_pad, g.lk, g.dk, keys_t, g.lk_pad);  // turned once, above
    pack_transposed(v, p.v.row, g.lk, g.dv, values_t, g.lk_pad);
    fill_zero(grad_keys_t, grad_keys_t + g.dk * g.lk_pad);
    fill_zero(grad_values_t, grad_values_t + g.dv * g.lk_pad);
    float* grad_q = p.grad_q.data + b * p.grad_q.batch + h * p.grad_q.head;

    for (int64_t i0 = 0; i0 < g.lq; i0 += g.block) {
      const int64_t rows = min_of(g.block, g.lq - i0);
      const int64_t visible = visible_keys(p, b, h, i0, rows);
      const int64_t cols = round_up(visible, kWidth);
      if (visible == 0) {
        for (int64_t r = 0; r < rows; ++r) {
          float* row = grad_q + (i0 + r) * p.grad_q.row;
          fill_zero(row, row + g.dk);
        }
        continue;
      }
      pack_rows(q + i0 * p.q.row, p.q.row, rows, g.dk, p.scale, queries, g.dk_pad, q_turn, i0);
      pack_rows(grad_out + i0 * p.grad_out_row, p.grad_out_row, rows, g.dv, 1.0f, grad_mixed,
                g.dv_pad);
      for (int64_t r = 0; r < rows; ++r) {
        const float* o = out + (i0 + r) * p.out_row;
        const float* d_o = grad_mixed + r * g.dv_pad;
        float dot = 0.0f;
        for (int64_t d = 0; d < g.dv; ++d) dot += o[d] * d_o[d];
        out_dot_grad[r] = dot;
      }
      gemm(rows, cols, g.dk, queries, g.dk_pad, 1, keys_t, g.lk_pad, probs, g.lk_pad, false);
      gemm(rows, cols, g.dv, grad_mixed, g.dv_pad, 1, values_t, g.lk_pad, grad_logits, g.lk_pad,
           false);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = i0 + r;
        float* s = probs + r * g.lk_pad;
        float* ds = grad_logits + r * g.lk_pad;
        add_bias_and_mask(s, visible, cols, p.bias ? p.bias + (h * g.lq + i) * g.lk : nullptr,
                          mask_row(p, b, h, i));
        const VecF shift = vset1(p.row_max[pair * g.lq + i]);
        const VecF inv_sum = vset1(p.row_inv_sum[pair * g.lq + i]);
        const VecF row_dot = vset1(out_dot_grad[r]);
        const VecF scale = vset1(keep_scale);
        const uint32_t row_key = dropout ? dropout_row_key(p.dropout_seed, pair, i, g.lq) : 0;
        for (int64_t j = 0; j < cols; j += kWidth) {
          const VecF prob = vmul(vexp_nonpositive(vsub(vload(s + j), shift)), inv_sum);
          VecF dropped_prob = prob, grad_prob = vload(ds + j);
          if (dropout) {
            const VecMask keep = dropout_keep(row_key, static_cast<uint32_t>(j), threshold);
            dropped_prob = vkeep(keep, vmul(prob, scale));
            grad_prob = vkeep(keep, vmul(grad_prob, scale));
          }
          vstore(s + j, dropped_prob);
          vstore(ds + j, vmul(prob, vsub(grad_prob, row_dot)));
        }
        if (grad_bias) {
          float* gb = grad_bias + (h * g.lq + i) * g.lk;
          for (int64_t j = 0; j < visible; ++j) gb[j] += ds[j];
        }
      }
      // dV^T += dO^T Pd and dK^T += (scale Q)^T dS: A read transposed (a_row = 1). Each element
      // sums over the block's rows in order with one FMA each, as dV += Pd^T dO would: the same
      // numbers. Columns [visible, cols) add exact zeros (their P and dS are 0).
      gemm(g.dv, cols, rows, grad_mixed, 1, g.dv_pad, probs, g.lk_pad, grad_values_t, g.lk_pad,
           true);
      gemm(g.dk, cols, rows, queries, 1, g.dk_pad, grad_logits, g.lk_pad, grad_keys_t, g.lk_pad,
           true);
      // dQ = scale dS K.
      gemm(rows, g.dk_pad, visible, grad_logits, g.lk_pad, 1, keys, g.dk_pad, grad_queries,
           g.dk_pad, false);
      for (int64_t r = 0; r < rows; ++r) {
        float* scaled = grad_queries + r * g.dk_pad;
        float* to = grad_q + (i0 + r) * p.grad_q.row;
        // With RoPE, dQ is scaled in place and then turned back on its way out.
        float* staged = q_turn.cos ? scaled : to;
        for (int64_t d = 0; d < g.dk; ++d) staged[d] = scaled[d] * p.scale;
        if (q_turn.cos) turn_row<true>(scaled, q_turn, i0 + r, g.dk, to);
      }
    }
    float* grad_k = p.grad_k.data + b * p.grad_k.batch + h * p.grad_k.head;
    float* grad_v = p.grad_v.data + b * p.grad_v.batch + h * p.grad_v.head;
    for (int64_t j = 0; j < g.lk; ++j) {
      float* to = grad_k + j * p.grad_k.row;
      float* staged = k_turn.cos ? key_row : to;  // dK's row, turned back on its way out (RoPE)
      for (int64_t d = 0; d < g.dk; ++d) staged[d] = grad_keys_t[d * g.lk_pad + j];
      if (k_turn.cos) turn_row<true>(key_row, k_turn, j, g.dk, to);
      for (int64_t d = 0; d < g.dv; ++d)
        grad_v[j * p.grad_v.row + d] = grad_values_t[d * g.lk_pad + j];
    }
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
