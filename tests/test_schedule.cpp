#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "train/schedule.h"

using namespace pelab;

TEST(Schedule, WarmupThenCosineClosedForm) {
  const LrSchedule s = make_schedule(1e-3, 100, 0.1);
  ASSERT_EQ(s.warmup_steps, 10);
  EXPECT_NEAR(s.at(0), 1e-4, 1e-15);
  EXPECT_NEAR(s.at(9), 1e-3, 1e-15);
  for (int step : {10, 35, 55, 99}) {
    const double expected = 0.5e-3 * (1 + std::cos(std::numbers::pi * (step - 10) / 90.0));
    EXPECT_NEAR(s.at(step), expected, 1e-15) << step;
  }
  EXPECT_NEAR(s.at(100), 0.0, 1e-15);
  EXPECT_GT(s.at(50), s.at(60));  // monotone decay after warm-up
}

TEST(Schedule, NoWarmup) {
  const LrSchedule s = make_schedule(2.0, 10, 0.0);
  EXPECT_DOUBLE_EQ(s.at(0), 2.0);
}
