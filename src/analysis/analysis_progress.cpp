#include "analysis/analysis_progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace pelab {
using Clock = std::chrono::steady_clock;

namespace {

std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

}  // namespace

AnalysisProgress::AnalysisProgress(std::string what, int64_t total, bool enabled)
    : what_(std::move(what)),
      total_(total),
      enabled_(enabled),
      tty_(isatty(fileno(stderr))),
      start_(Clock::now()),
      last_(Clock::now()) {}

AnalysisProgress::~AnalysisProgress() {
  if (enabled_ && tty_) {
    fmt::print(stderr, "\r\x1b[2K");
    std::fflush(stderr);
  }
}

void AnalysisProgress::update(int64_t done) {
  if (!enabled_) return;
  const auto now = Clock::now();
  if (std::chrono::duration<double>(now - last_).count() < (tty_ ? 0.25 : 15.0)) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = double(done) / std::max(elapsed, 1e-9);
  const std::string line =
      fmt::format("{}: {}/{} samples | {:.0f} samples/s | ETA {}", what_, done, total_, rate,
                  duration_text(rate > 0 ? double(total_ - done) / rate : 0.0));
  if (tty_)
    fmt::print(stderr, "\r\x1b[2K{}", line);
  else
    fmt::print(stderr, "{}\n", line);
  std::fflush(stderr);
}

Dataset seeded_subset(const Dataset& data, int64_t n, uint64_t seed) {
  if (n <= 0 || n >= data.size()) return data;
  std::vector<int64_t> order(static_cast<size_t>(data.size()));
  for (int64_t i = 0; i < data.size(); ++i) order[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed ^ 0x53554253455453ULL);  // "SUBSETS"
  shuffle_in_place(rng, order.data(), data.size());
  order.resize(static_cast<size_t>(n));
  std::sort(order.begin(), order.end());
  return data.index(torch::tensor(order, torch::kInt64));
}

}  // namespace pelab
