#include "cli/openmp_env.h"

#include <unistd.h>

#include <cstdlib>

namespace pelab::cli {

void restart_with_short_openmp_spin(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") ||
      std::getenv("PELAB_KEEP_OPENMP_ENV"))
    return;
  // About 10-30 microseconds of spinning: long enough to bridge back-to-back regions of one
  // step, short enough not to starve a sibling thread that lost its core.
  setenv("GOMP_SPINCOUNT", "10000", 1);
  execv("/proc/self/exe", argv);
  // execv returned: no /proc (or no permission); carry on with libgomp's defaults.
}

}  // namespace pelab::cli
