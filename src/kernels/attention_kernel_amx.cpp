// The fused attention kernels with bf16 products on AMX tiles (Intel's Advanced Matrix
// Extensions: Sapphire Rapids and later), for train.precision = "bf16". They are
// attention_kernel_bf16.h's kernels with one change, the product routine: TDPBF16PS multiplies a
// [16 x 2k] bf16 tile by a [2k x 16] one stored as row pairs, the layout the VDPBF16PS kernels
// already pack, into a [16 x 16] float32 tile. The operands are the same bf16 values; only the
// float32 sums round differently (measured here: AMX adds a pair's two exact products and rounds
// once, VDPBF16PS rounds after each product), so the two agree to float32 sums (tests) and each is
// deterministic.
// With a head of 16 dims, VDPBF16PS needs 128 instructions for a [16 x 16 x 16] block where AMX
// needs one, so the products stop being the kernels' main cost (docs/PERFORMANCE.md).
//
// Compile flags (-mamx-tile -mamx-bf16 and AVX512_BF16's) are set in CMakeLists.txt; without them
// the table is empty. Linux hands out the tile registers' state only to a process that asks
// (arch_prctl ARCH_REQ_XCOMP_PERM); amx_tiles_usable() asks once.
#include "kernels/attention_kernel.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && \
    defined(__AVX512BW__) && defined(__FMA__) && defined(__linux__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PELAB_KERNEL_ISA amx
#include "kernels/attention_kernel_bf16.h"

namespace pelab::kernels::amx {
namespace {

// The tile registers' shapes, loaded once per kernel call (LDTILECFG, about 50 ns): tiles 0 and 1
// accumulate two adjacent [16 x 16] blocks of C; 2, 3 and 4 hold A's [16 rows x 16 pairs] and
// B's two [16 pairs x 16 columns] of a full step; 5, 6 and 7 the same for a half step of 8
// pairs, so every summed axis padded to 8 pairs (attention_kernel_bf16.h) runs on tiles.
// GCC's tile intrinsics paste the register's number into their assembly text, so the numbers are
// macros, not constants.
#define PELAB_TILE_C0 0
#define PELAB_TILE_C1 1
#define PELAB_TILE_A 2
#define PELAB_TILE_B0 3
#define PELAB_TILE_B1 4
#define PELAB_TILE_HALF_A 5
#define PELAB_TILE_HALF_B0 6
#define PELAB_TILE_HALF_B1 7
constexpr int64_t kTileRows = 16, kFullStepPairs = 16;
static_assert(kTileStepPairs == kFullStepPairs / 2);

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

// Configures the tiles for one kernel call on this thread and releases them on return (a thread
// holding tile state makes every context switch save 8 KiB more).
class TileSession {
 public:
  TileSession() {
    TileConfig config;
    const auto shape = [&](int t, int rows, int bytes) {
      config.rows[t] = static_cast<uint8_t>(rows);
      config.bytes_per_row[t] = static_cast<uint16_t>(bytes);
    };
    shape(PELAB_TILE_C0, kTileRows, 64);
    shape(PELAB_TILE_C1, kTileRows, 64);
    shape(PELAB_TILE_A, kTileRows, kFullStepPairs * 4);
    shape(PELAB_TILE_B0, kFullStepPairs, 64);
    shape(PELAB_TILE_B1, kFullStepPairs, 64);
    shape(PELAB_TILE_HALF_A, kTileRows, kTileStepPairs * 4);
    shape(PELAB_TILE_HALF_B0, kTileStepPairs, 64);
    shape(PELAB_TILE_HALF_B1, kTileStepPairs, 64);
    _tile_loadconfig(&config);
  }
  ~TileSession() { _tile_release(); }
  TileSession(const TileSession&) = delete;
  TileSession& operator=(const TileSession&) = delete;
};

// C[16 rows][16 or 32 columns] (+)= A[16 rows][K pairs] B[K pairs][columns] for K a multiple of
// kTileStepPairs; `two` = the second column block too. Strides in bytes, as the tile loads take
// them.
template <bool two>
inline void product_on_tiles(int64_t K, const Word* A, int64_t a_row, const Word* B, int64_t ldb,
                             float* C, int64_t ldc, bool accumulate) {
  if (accumulate) {
    _tile_loadd(PELAB_TILE_C0, C, ldc * 4);
    if constexpr (two) _tile_loadd(PELAB_TILE_C1, C + kWidth, ldc * 4);
  } else {
    _tile_zero(PELAB_TILE_C0);
    if constexpr (two) _tile_zero(PELAB_TILE_C1);
  }
  // One step of the summed axis on tiles (a, b0, b1): the tile numbers must be literals.
#define PELAB_TILE_STEP(a, b0, b1)                    \
  do {                                                \
    _tile_loadd(a, A + k, a_row * 4);                 \
    _tile_loadd(b0, B + k * ldb, ldb * 4);            \
    _tile_dpbf16ps(PELAB_TILE_C0, a, b0);             \
    if constexpr (two) {                              \
      _tile_loadd(b1, B + k * ldb + kWidth, ldb * 4); \
      _tile_dpbf16ps(PELAB_TILE_C1, a, b1);           \
    }                                                 \
  } while (false)
  int64_t k = 0;
  for (; k + kFullStepPairs <= K; k += kFullStepPairs)
    PELAB_TILE_STEP(PELAB_TILE_A, PELAB_TILE_B0, PELAB_TILE_B1);
  if (k < K) PELAB_TILE_STEP(PELAB_TILE_HALF_A, PELAB_TILE_HALF_B0, PELAB_TILE_HALF_B1);
#undef PELAB_TILE_STEP
  _tile_stored(PELAB_TILE_C0, C, ldc * 4);
  if constexpr (two) _tile_stored(PELAB_TILE_C1, C + kWidth, ldc * 4);
}

// vdpbf16_product's contract on tiles: C (+)= A B over Words, N a multiple of kWidth (16). The
// summed axis runs to K rounded up to kTileStepPairs: A's rows and B's row pairs hold zeros
// there (attention_kernel_bf16.h pads them). Whole groups of 16 rows go through the tiles; the
// rest through VDPBF16PS (a row's sums do not depend on the other rows, so both are
// deterministic).
void amx_product(int64_t M, int64_t N, int64_t K, const Word* A, int64_t a_row, const Word* B,
                 int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  const int64_t tiled_rows = K > 0 ? M / kTileRows * kTileRows : 0;
  const int64_t steps = round_up(K, kTileStepPairs);
  for (int64_t m = 0; m < tiled_rows; m += kTileRows) {
    const Word* a = A + m * a_row;
    float* c = C + m * ldc;
    int64_t n = 0;
    for (; n + 2 * kWidth <= N; n += 2 * kWidth)
      product_on_tiles<true>(steps, a, a_row, B + n, ldb, c + n, ldc, accumulate);
    if (n < N) product_on_tiles<false>(steps, a, a_row, B + n, ldb, c + n, ldc, accumulate);
  }
  vdpbf16_product(M - tiled_rows, N, K, A + tiled_rows * a_row, a_row, B, ldb, C + tiled_rows * ldc,
                  ldc, accumulate);
}

void forward_pairs_amx(const AttentionProblem& p, int64_t first, int64_t last) {
  const TileSession tiles;
  forward_pairs_bf16<amx_product>(p, first, last);
}

void backward_pairs_amx(const AttentionProblem& p, int64_t first, int64_t last, float* grad_bias) {
  const TileSession tiles;
  backward_pairs_bf16<amx_product>(p, first, last, grad_bias);
}

}  // namespace
}  // namespace pelab::kernels::amx

const pelab::kernels::KernelTable& pelab::kernels::amx_kernels() {
  static const KernelTable table{"amx", amx::forward_pairs_amx, amx::backward_pairs_amx,
                                 amx::kernel_table().dropout};
  return table;
}

bool pelab::kernels::amx_tiles_usable() {
  static const bool usable = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16") ||
        !__builtin_cpu_supports("avx512bf16"))
      return false;
    // ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA: the process may then use the tile data.
    constexpr int kRequestPermission = 0x1023, kTileData = 18;
    return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
  }();
  return usable;
}
#else
const pelab::kernels::KernelTable& pelab::kernels::amx_kernels() {
  static const KernelTable none{"amx", nullptr, nullptr, nullptr};
  return none;
}

bool pelab::kernels::amx_tiles_usable() { return false; }
#endif
