// RowParallelLinear: y = x A^T + b with A [out, in] split by columns (input features) across the tensor-parallel
// group, Megatron-LM's row-parallel layer. The input is this rank's slice of the features (a ColumnParallelLinear's
// output), or is split here when input_is_parallel is false; the partial products are summed over the group
// (reduce_from_tensor_parallel_region), or reduce-scattered along the sequence under sequence parallelism. The bias
// is replicated and added once, after the sum. Initialised as nn::Linear(in, out) from the same generator state.
#pragma once

#include <cstdint>
#include <memory>

#include "braid/dist/parallel_regions.h"
#include "braid/nn/module.h"

namespace braid::dist {

struct RowParallelLinearOptions {
  bool bias = true;
  bool input_is_parallel = true;
  // The output is [.., T/t, C], reduce-scattered along its sequence dim (the one before the features). The bias's
  // gradient is then partial: it is marked sequence-parallel (dist/sequence_parallel.h).
  bool sequence_parallel = false;
  double init_std = 0;  // as ColumnParallelLinearOptions
  Device device = Device::cpu();
  DType dtype = DType::Float32;
};

class RowParallelLinearImpl : public nn::Module {
 public:
  RowParallelLinearImpl(int64_t in_features, int64_t out_features, ProcessGroupPtr group,
                        const RowParallelLinearOptions& options = {});
  Tensor forward(const Tensor& x);

  int64_t in_features, out_features;  // of the full layer
  ProcessGroupPtr group;
  RowParallelLinearOptions options;
  Tensor weight, bias;  // [out, in / t] (this rank's shard) and [out] (replicated)
};

class RowParallelLinear : public nn::ModuleHolder<RowParallelLinearImpl> {
 public:
  using nn::ModuleHolder<RowParallelLinearImpl>::ModuleHolder;
  RowParallelLinear(int64_t in_features, int64_t out_features, ProcessGroupPtr group,
                    const RowParallelLinearOptions& options = {})
      : ModuleHolder(std::make_shared<RowParallelLinearImpl>(in_features, out_features, std::move(group), options)) {}
};

}  // namespace braid::dist
