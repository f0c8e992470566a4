// Learning-rate schedule: linear warm-up to the peak, then cosine decay to zero, stepped per batch.
#pragma once

#include <cstdint>

namespace pelab {

struct LrSchedule {
  double peak_lr = 1e-4;
  int64_t total_steps = 1;
  int64_t warmup_steps = 0;
  // Learning rate for optimiser step `step` (0-based).
  double at(int64_t step) const;
};

LrSchedule make_schedule(double peak_lr, int64_t total_steps, double warmup_fraction);

}  // namespace pelab
