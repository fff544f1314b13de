// ColumnParallelLinear: y = x A^T + b with A [out, in] split by rows (output features) across the tensor-parallel
// group, Megatron-LM's column-parallel layer. The input is replicated (entering through
// copy_to_tensor_parallel_region, or gathered along the sequence under sequence parallelism); the output is this
// rank's slice of the features, or all of them with gather_output. Each rank creates only its shard and draws it
// from the generator as nn::Linear(in, out) would draw the whole layer (dist/shard_init.h), so the layer on any
// group size is the same function as that Linear built from the same generator state.
#pragma once

#include <cstdint>
#include <memory>

#include "braid/dist/parallel_regions.h"
#include "braid/nn/module.h"

namespace braid::dist {

struct ColumnParallelLinearOptions {
  bool bias = true;
  bool gather_output = false;
  // The input is [.., T/t, C], split along its sequence dim (the one before the features); it is gathered first.
  bool sequence_parallel = false;
  // 0: nn::Linear's init (the same draws as nn::Linear(in, out) from the same generator); > 0: weight ~ N(0,
  // init_std), bias zeros (GPT-2's init).
  double init_std = 0;
  // 3 for a fused QKV weight: each of the 3 row blocks is split across ranks, so a rank holds its q, k and v rows.
  int64_t partition_stride = 1;
  Device device = Device::cpu();
  DType dtype = DType::Float32;
};

class ColumnParallelLinearImpl : public nn::Module {
 public:
  ColumnParallelLinearImpl(int64_t in_features, int64_t out_features, ProcessGroupPtr group,
                           const ColumnParallelLinearOptions& options = {});
  Tensor forward(const Tensor& x);

  int64_t in_features, out_features;  // of the full layer
  ProcessGroupPtr group;
  ColumnParallelLinearOptions options;
  Tensor weight, bias;  // this rank's shards: [out / t, in] and [out / t]
};

class ColumnParallelLinear : public nn::ModuleHolder<ColumnParallelLinearImpl> {
 public:
  using nn::ModuleHolder<ColumnParallelLinearImpl>::ModuleHolder;
  ColumnParallelLinear(int64_t in_features, int64_t out_features, ProcessGroupPtr group,
                       const ColumnParallelLinearOptions& options = {})
      : ModuleHolder(std::make_shared<ColumnParallelLinearImpl>(in_features, out_features, std::move(group), options)) {
  }
};

}  // namespace braid::dist
