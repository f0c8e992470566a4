// The machine's own float32 ceiling: fused multiply-adds per second with nothing else in the loop
// (no loads, no stores), one thread per core, so that docs/PERFORMANCE.md can set pelab's rates
// and oneDNN's against the hardware rather than against another library.
//   g++ -O2 -mavx512f -mfma -ffp-contract=fast -pthread bench/fma_peak.cpp -o /tmp/fma_peak
//   /tmp/fma_peak 2
// (AVX2 only: -mavx2 -mfma instead.) Prints the best of three rounds per thread count.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

// One vector register of floats as GCC's vector type: the compile flags pick the width, and
// -ffp-contract=fast makes each acc * a + b one fused multiply-add.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

// 24 independent accumulators: more than latency (4 cycles) x FMA ports (2) chains, so the
// ports, not the dependencies, set the pace. No asm barriers: they made GCC add register moves
// that halved the rate.
constexpr int kChains = 24;

float fma_loop(long iterations) {
  Vec acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = Vec{} + 0.001f * static_cast<float>(i);
  const Vec a = Vec{} + 0.999999f, b = Vec{} + 1e-7f;
  for (long n = 0; n < iterations; ++n) {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * a + b;
  }
  float sum = 0.0f;  // used, so the loop cannot be dropped
  for (int i = 0; i < kChains; ++i) sum += acc[i][0];
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
