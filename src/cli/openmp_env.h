// OpenMP's wait policy, set before LibTorch's first parallel region (docs/PERFORMANCE.md).
#pragma once

namespace pelab::cli {

// libgomp's default has idle threads spin for about a millisecond (GOMP_SPINCOUNT 300000) at the
// end of every parallel region. A training step opens hundreds of short regions, and when the
// CPU is shared the spinning threads take the cores their working siblings need: on a 2-core
// machine with other work, training ran 3 to 6 times slower. libgomp reads its settings only
// when it is loaded, so when the user has chosen none, pelab sets a short spin and runs itself
// again (execv of /proc/self/exe, same arguments). PELAB_KEEP_OPENMP_ENV=1 keeps libgomp's
// defaults.
void restart_with_short_openmp_spin(char** argv);

}  // namespace pelab::cli
