// The machine's own float32 ceiling: fused multiply-adds per second with nothing else in the loop
// (no loads, no stores), one thread per core, so that docs/PERFORMANCE.md can set pelab's rates
// and oneDNN's against the hardware rather than against another library.
//   g++ -O2 -mavx512f -mfma -pthread bench/fma_peak.cpp -o /tmp/fma_peak && /tmp/fma_peak 2
// (AVX2 only: -mavx2 -mfma -DFMA_PEAK_AVX2.) Prints the best of three rounds per thread count.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#if defined(FMA_PEAK_AVX2)
using Vec = __m256;
constexpr int kLanes = 8;
inline Vec splat(float x) { return _mm256_set1_ps(x); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float first(Vec a) { return _mm256_cvtss_f32(a); }
#else
using Vec = __m512;
constexpr int kLanes = 16;
inline Vec splat(float x) { return _mm512_set1_ps(x); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float first(Vec a) { return _mm512_cvtss_f32(a); }
#endif

// 24 independent accumulators: more than latency (4 cycles) x FMA ports (2) chains, so the
// ports, not the dependencies, set the pace. No asm barriers: they made GCC add register moves
// that halved the rate.
constexpr int kChains = 24;

float fma_loop(long iterations) {
  Vec acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = splat(0.001f * static_cast<float>(i));
  const Vec a = splat(0.999999f), b = splat(1e-7f);
  for (long n = 0; n < iterations; ++n) {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = fma(acc[i], a, b);
  }
  float sum = 0.0f;  // used, so the loop cannot be dropped
  for (int i = 0; i < kChains; ++i) sum += first(acc[i]);
  return sum;
}

int main(int argc, char** argv) {
  const int max_threads = argc > 1 ? std::atoi(argv[1]) : 1;
  if (max_threads < 1) {
    std::fprintf(stderr, "fma_peak: the thread count must be a positive integer\n");
    return 1;
  }
  const long iterations = 100000000;
  for (int threads = 1; threads <= max_threads; ++threads) {
    double best = 0.0;
    for (int round = 0; round < 3; ++round) {
      std::vector<float> sums(threads);
      const auto start = std::chrono::steady_clock::now();
      std::vector<std::thread> workers;
      for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] { sums[t] = fma_loop(iterations); });
      for (auto& w : workers) w.join();
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double flops = 2.0 * kLanes * kChains * static_cast<double>(iterations) * threads;
      best = std::max(best, flops / seconds / 1e9);
      if (sums[0] == 12345.0f) std::puts("");
    }
    std::printf("%d thread(s): %.1f GFLOP/s float32 FMA peak (%d-lane vectors)\n", threads, best,
                kLanes);
  }
}
