#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace pelab {

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return peak_lr * double(step + 1) / double(warmup_steps);
  const double span = double(std::max<int64_t>(1, total_steps - warmup_steps));
  const double progress = std::clamp(double(step - warmup_steps) / span, 0.0, 1.0);
  return peak_lr * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

LrSchedule make_schedule(double peak_lr, int64_t total_steps, double warmup_fraction) {
  LrSchedule s;
  s.peak_lr = peak_lr;
  s.total_steps = std::max<int64_t>(1, total_steps);
  s.warmup_steps = std::llround(warmup_fraction * double(s.total_steps));
  return s;
}

}  // namespace pelab
