// Private to dist/: the options a tensor-parallel Transformer block gives its two projections. The input projection
// (column-parallel: QKV, or the MLP's up-projection) takes init_std; the output projection (row-parallel: c_proj)
// takes proj_init_std (GPT-2 scales it down with the depth, the residual stream summing one per block).
#pragma once

#include <cstdint>

#include "braid/dist/parallel_transformer.h"

namespace braid::dist::detail {

inline ColumnParallelLinearOptions input_projection_options(const ParallelTransformerOptions& o,
                                                            int64_t partition_stride) {
  return {.bias = o.bias,
          .sequence_parallel = o.sequence_parallel,
          .init_std = o.init_std,
          .partition_stride = partition_stride,
          .device = o.device,
          .dtype = o.dtype};
}

inline RowParallelLinearOptions output_projection_options(const ParallelTransformerOptions& o) {
  return {.bias = o.bias,
          .sequence_parallel = o.sequence_parallel,
          .init_std = o.proj_init_std,
          .device = o.device,
          .dtype = o.dtype};
}

}  // namespace braid::dist::detail
