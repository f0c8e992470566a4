// What the long analyses (ablate, removal, reproduce's analysis phase) share: a progress line
// with ETA on stderr, as training shows, and the seeded subset behind their --samples N.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "tasks/task.h"

namespace pelab {

// Called by an analysis after each batch with the number of samples finished so far.
using SamplesDone = std::function<void(int64_t)>;

// "ablate: 1200/6000 samples | 41 samples/s | ETA 0:01:57" on stderr: redrawn in place on a
// terminal (at most 4 times a second), one line every 15 s otherwise.
class AnalysisProgress {
 public:
  AnalysisProgress(std::string what, int64_t total, bool enabled);
  ~AnalysisProgress();  // clears a terminal line
  void update(int64_t done);
  SamplesDone callback() {
    return [this](int64_t done) { update(done); };
  }

 private:
  std::string what_;
  int64_t total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

// n rows of `data` chosen by a shuffle seeded with `seed`, in their original order; all of `data`
// when n <= 0 or n >= its size.
Dataset seeded_subset(const Dataset& data, int64_t n, uint64_t seed);

}  // namespace pelab
