// Private to dist/: the ids a rank's vocabulary slice holds, shared by VocabParallelEmbedding and
// vocab_parallel_cross_entropy. Device-agnostic: the masks are computed where the ids live.
#pragma once

#include <cstdint>

#include "braid/core/tensor.h"

namespace braid::dist::detail {

// Throws naming `op` and the first bad id when an id lies outside [0, vocab_size).
void check_ids_in_vocabulary(const char* op, const Tensor& ids, int64_t vocab_size);

struct VocabSlice {
  Tensor local_ids;  // int64: id - start where the slice holds the id, else 0 (a valid row to look up)
  Tensor held;       // `dtype`: 1 where the slice holds the id, else 0
};
VocabSlice vocab_slice(const Tensor& ids, int64_t start, int64_t end, DType dtype);

}  // namespace braid::dist::detail
