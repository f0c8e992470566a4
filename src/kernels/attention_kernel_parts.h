// The building blocks of the fused attention kernels (attention_kernel.h states the maths),
// written once over the vector operations of simd.h and compiled once per instruction set with
// the kernels that use them (attention_kernel_impl.h, and attention_kernel_bf16.h for bf16
// products): the register-tiled product, per-thread scratch, operand packing, and the row-wise
// softmax, its gradient and the stores of the results.
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
// T is float (one FMA per k) or, in the bf16 kernels, Word (a pair of bf16 values: one k step
// is two products, VDPBF16PS); simd.h's load_operand, broadcast_operand and multiply_accumulate
// say how each multiplies.
template <int RB, int VB, typename T>
inline void gemm_tile(int64_t K, const T* A, int64_t a_row, int64_t a_k, const T* B, int64_t ldb,
                      float* C, int64_t ldc, bool accumulate) {
  using Operand = decltype(load_operand(B));
  VecF acc[RB][VB];
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < VB; ++v) acc[r][v] = accumulate ? vload(C + r * ldc + v * kWidth) : vzero();
  for (int64_t k = 0; k < K; ++k) {
    Operand b[VB];
#pragma GCC unroll 4
    for (int v = 0; v < VB; ++v) b[v] = load_operand(B + k * ldb + v * kWidth);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) {
      const Operand a = broadcast_operand(A[r * a_row + k * a_k]);
#pragma GCC unroll 4
      for (int v = 0; v < VB; ++v) acc[r][v] = multiply_accumulate(a, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < VB; ++v) vstore(C + r * ldc + v * kWidth, acc[r][v]);
}

// One panel of VB vectors of columns, all M rows: RB-row tiles, then 4-row, then single rows.
template <int RB, int VB, typename T>
void gemm_panel(int64_t M, int64_t K, const T* A, int64_t a_row, int64_t a_k, const T* B,
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
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t a_row, int64_t a_k, const T* B,
          int64_t ldb, float* C, int64_t ldc, bool accumulate) {
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

// One (batch, head) pair: where its q, k, v, output, dO and dQ rows start, and its RoPE turns.
struct PairOperands {
  int64_t b, h;
  const float *q, *k, *v;
  float* out;
  const float* grad_out;  // null in forward
  float* grad_q;          // null in forward
  RowTurn q_turn, k_turn;
  PairOperands(const AttentionProblem& p, int64_t pair)
      : b(pair / p.heads),
        h(pair % p.heads),
        q(p.q.data + b * p.q.batch + h * p.q.head),
        k(p.k.data + b * p.k.batch + h * p.k.head),
        v(p.v.data + b * p.v.batch + h * p.v.head),
        out(p.out + b * p.out_batch + h * p.out_head),
        grad_out(p.grad_out ? p.grad_out + b * p.grad_out_batch + h * p.grad_out_head : nullptr),
        grad_q(p.grad_q.data ? p.grad_q.data + b * p.grad_q.batch + h * p.grad_q.head : nullptr),
        q_turn(query_turn(p, h)),
        k_turn(key_turn(p, h)) {}
};

// Query rows [i0, i0 + rows) of a pair: the keys any of them sees, [0, visible), and the logits'
// columns the kernels compute, [0, cols): visible rounded up to whole vectors.
struct QueryBlock {
  int64_t i0, rows, visible, cols;
  QueryBlock(const AttentionProblem& p, const Geometry& g, const PairOperands& pair, int64_t first)
      : i0(first),
        rows(min_of(g.block, g.lq - first)),
        visible(visible_keys(p, pair.b, pair.h, first, rows)),
        cols(round_up(visible, kWidth)) {}
};

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
    // Whole vectors by hand: when the row was turned in place, in == out, and the compiler's own
    // vectorisation of this loop checked the overlap at run time and fell back to scalar code.
    int64_t d = 0;
    if (scale != 1.0f || in != out) {
      const VecF factor = vset1(scale);
      for (; d + kWidth <= dims; d += kWidth) vstore(out + d, vmul(vload(in + d), factor));
      for (; d < dims; ++d) out[d] = in[d] * scale;
    }
    for (d = dims; d < ld; ++d) out[d] = 0.0f;
  }
}

// Packs the transpose: dst[d][j] = src[j][d] for j < rows (row j turned by table row j when
// `turn` has tables, through `row_buffer`, kWidth * dims floats), zero for j in [rows, ld).
// Whole kWidth x kWidth tiles go through registers (vtranspose), the edges element by element.
void pack_transposed(const float* src, int64_t src_row, int64_t rows, int64_t dims, float* dst,
                     int64_t ld, const RowTurn& turn = {}, float* row_buffer = nullptr) {
  for (int64_t d = 0; d < dims; ++d) fill_zero(dst + d * ld + rows, dst + (d + 1) * ld);
  const float* row_of[kWidth];
  for (int64_t j0 = 0; j0 < rows; j0 += kWidth) {
    const int64_t tile_rows = min_of(kWidth, rows - j0);
    for (int64_t r = 0; r < tile_rows; ++r) {
      row_of[r] = src + (j0 + r) * src_row;
      if (turn.cos) {
        turn_row<false>(row_of[r], turn, j0 + r, dims, row_buffer + r * dims);
        row_of[r] = row_buffer + r * dims;
      }
    }
    int64_t d0 = 0;
    if (tile_rows == kWidth)
      for (; d0 + kWidth <= dims; d0 += kWidth) {
        const float* tile_of[kWidth];
        for (int64_t r = 0; r < kWidth; ++r) tile_of[r] = row_of[r] + d0;
        vtranspose(tile_of, dst + d0 * ld + j0, ld);
      }
    for (int64_t r = 0; r < tile_rows; ++r)
      for (int64_t d = d0; d < dims; ++d) dst[d * ld + j0 + r] = row_of[r][d];
  }
}

// Dropout on the attention weights, as both passes apply it.
struct WeightDropout {
  bool on;
  uint32_t threshold;
  float keep_scale;
  explicit WeightDropout(float p)
      : on(p > 0.0f),
        threshold(dropout_threshold24(p)),
        keep_scale(p > 0.0f ? 1.0f / (1.0f - p) : 1.0f) {}
};

// Forward, one query row i of pair `pair`: s[0, cols) holds its logits scale q k^T and becomes
// its weights dropout(softmax(s + bias + mask)) (zero past `visible`); the softmax statistics
// go to row_max / row_inv_sum when the problem keeps them.
void attention_weights_row(const AttentionProblem& p, const WeightDropout& dropout, int64_t pair,
                           int64_t i, int64_t visible, int64_t cols, float* s) {
  const int64_t b = pair / p.heads, h = pair % p.heads;
  add_bias_and_mask(s, visible, cols, p.bias ? p.bias + (h * p.q_len + i) * p.k_len : nullptr,
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
  const VecF factor = vset1(inv_sum * dropout.keep_scale);
  const uint32_t row_key = dropout.on ? dropout_row_key(p.dropout_seed, pair, i, p.q_len) : 0;
  for (int64_t j = 0; j < cols; j += kWidth) {
    VecF x = vmul(vload(s + j), factor);
    if (dropout.on)
      x = vkeep(dropout_keep(row_key, static_cast<uint32_t>(j), dropout.threshold), x);
    vstore(s + j, x);
  }
  if (p.row_max) {
    p.row_max[pair * p.q_len + i] = row_max == kNegInf ? 0.0f : row_max;
    p.row_inv_sum[pair * p.q_len + i] = inv_sum;
  }
}

// Backward, one query row i: s[0, cols) holds its logits again and ds its dPd = dO V^T;
// out_dot_grad is rowsum(dO * O). s becomes dropout(P) and ds becomes dS, which is also added to
// grad_bias's row when given.
void weight_gradient_row(const AttentionProblem& p, const WeightDropout& dropout, int64_t pair,
                         int64_t i, int64_t visible, int64_t cols, float out_dot_grad, float* s,
                         float* ds, float* grad_bias) {
  const int64_t b = pair / p.heads, h = pair % p.heads;
  add_bias_and_mask(s, visible, cols, p.bias ? p.bias + (h * p.q_len + i) * p.k_len : nullptr,
                    mask_row(p, b, h, i));
  const VecF shift = vset1(p.row_max[pair * p.q_len + i]);
  const VecF inv_sum = vset1(p.row_inv_sum[pair * p.q_len + i]);
  const VecF row_dot = vset1(out_dot_grad);
  const VecF scale = vset1(dropout.keep_scale);
  const uint32_t row_key = dropout.on ? dropout_row_key(p.dropout_seed, pair, i, p.q_len) : 0;
  for (int64_t j = 0; j < cols; j += kWidth) {
    const VecF prob = vmul(vexp_nonpositive(vsub(vload(s + j), shift)), inv_sum);
    VecF dropped_prob = prob, grad_prob = vload(ds + j);
    if (dropout.on) {
      const VecMask keep = dropout_keep(row_key, static_cast<uint32_t>(j), dropout.threshold);
      dropped_prob = vkeep(keep, vmul(prob, scale));
      grad_prob = vkeep(keep, vmul(grad_prob, scale));
    }
    vstore(s + j, dropped_prob);
    vstore(ds + j, vmul(prob, vsub(grad_prob, row_dot)));
  }
  if (grad_bias) {
    float* gb = grad_bias + (h * p.q_len + i) * p.k_len;
    for (int64_t j = 0; j < visible; ++j) gb[j] += ds[j];
  }
}

// The block's dO rows packed into grad_mixed [rows][dv_pad], and rowsum(dO * O) per row.
void pack_output_gradient(const AttentionProblem& p, const Geometry& g, const PairOperands& x,
                          const QueryBlock& blk, float* grad_mixed, float* out_dot_grad) {
  pack_rows(x.grad_out + blk.i0 * p.grad_out_row, p.grad_out_row, blk.rows, g.dv, 1.0f, grad_mixed,
            g.dv_pad);
  for (int64_t r = 0; r < blk.rows; ++r) {
    const float* o = x.out + (blk.i0 + r) * p.out_row;
    const float* d_o = grad_mixed + r * g.dv_pad;
    float dot = 0.0f;
    for (int64_t d = 0; d < g.dv; ++d) dot += o[d] * d_o[d];
    out_dot_grad[r] = dot;
  }
}

// dQ's rows i0.. of the block: grad_queries [rows][dk_pad] holds dS K; they go out times the
// scale, turned back when q rotates (grad_queries is overwritten on the way).
void store_query_gradients(const AttentionProblem& p, const Geometry& g, const PairOperands& x,
                           const QueryBlock& blk, float* grad_queries) {
  for (int64_t r = 0; r < blk.rows; ++r) {
    float* scaled = grad_queries + r * g.dk_pad;
    float* to = x.grad_q + (blk.i0 + r) * p.grad_q.row;
    float* staged = x.q_turn.cos ? scaled : to;
    for (int64_t d = 0; d < g.dk; ++d) staged[d] = scaled[d] * p.scale;
    if (x.q_turn.cos) turn_row<true>(scaled, x.q_turn, blk.i0 + r, g.dk, to);
  }
}

// The forward's output rows of the block from mixed [rows][dv_pad].
void store_output_rows(const AttentionProblem& p, const Geometry& g, const QueryBlock& blk,
                       const float* mixed, float* out) {
  for (int64_t r = 0; r < blk.rows; ++r)
    copy_floats(mixed + r * g.dv_pad, mixed + r * g.dv_pad + g.dv, out + (blk.i0 + r) * p.out_row);
}

// out[j * out_row + d] = from_t[d * ld + j] for d < dims, j < rows: a [dims][ld] transpose
// turned back into rows, whole kWidth x kWidth tiles through registers.
void unpack_transposed(const float* from_t, int64_t ld, int64_t dims, int64_t rows, float* out,
                       int64_t out_row) {
  int64_t j0 = 0;
  for (; j0 + kWidth <= rows; j0 += kWidth) {
    int64_t d0 = 0;
    for (; d0 + kWidth <= dims; d0 += kWidth) {
      const float* tile_of[kWidth];
      for (int64_t d = 0; d < kWidth; ++d) tile_of[d] = from_t + (d0 + d) * ld + j0;
      vtranspose(tile_of, out + j0 * out_row + d0, out_row);
    }
    for (int64_t j = j0; j < j0 + kWidth; ++j)
      for (int64_t d = d0; d < dims; ++d) out[j * out_row + d] = from_t[d * ld + j];
  }
  for (; j0 < rows; ++j0)
    for (int64_t d = 0; d < dims; ++d) out[j0 * out_row + d] = from_t[d * ld + j0];
}

// The pair's dK and dV from their transposes dK^T [dk][lk_pad] and dV^T [dv][lk_pad]; dK's rows
// turned back when k rotates (staged in key_rows, lk * dk floats).
void store_key_value_gradients(const AttentionProblem& p, const Geometry& g, const PairOperands& x,
                               const float* grad_keys_t, const float* grad_values_t,
                               float* key_rows) {
  const RowTurn& k_turn = x.k_turn;
  float* grad_k = p.grad_k.data + x.b * p.grad_k.batch + x.h * p.grad_k.head;
  float* grad_v = p.grad_v.data + x.b * p.grad_v.batch + x.h * p.grad_v.head;
  if (k_turn.cos) {
    unpack_transposed(grad_keys_t, g.lk_pad, g.dk, g.lk, key_rows, g.dk);
    for (int64_t j = 0; j < g.lk; ++j)
      turn_row<true>(key_rows + j * g.dk, k_turn, j, g.dk, grad_k + j * p.grad_k.row);
  } else {
    unpack_transposed(grad_keys_t, g.lk_pad, g.dk, g.lk, grad_k, p.grad_k.row);
  }
  unpack_transposed(grad_values_t, g.lk_pad, g.dv, g.lk, grad_v, p.grad_v.row);
}

// Query rows [i0, i0 + rows) that see no key: their dQ is zero.
void zero_query_gradients(const AttentionProblem& p, const Geometry& g, const PairOperands& x,
                          const QueryBlock& blk) {
  for (int64_t r = 0; r < blk.rows; ++r) {
    float* row = x.grad_q + (blk.i0 + r) * p.grad_q.row;
    fill_zero(row, row + g.dk);
  }
}

}  // namespace
}  // namespace pelab::kernels::PELAB_KERNEL_ISA
