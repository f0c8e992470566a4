#pragma once

#include <cstdint>

namespace pelab {

// T5's bucket of relative_position = j - i (key minus query), as in Hugging Face transformers'
// T5Attention._relative_position_bucket.
int64_t t5_relative_position_bucket(int64_t relative_position, bool bidirectional,
                                    int64_t num_buckets, int64_t max_distance);

}  // namespace pelab
