// Private to dist/: one pass of a batch through a pipeline's stages in stage order under no-grad, each boundary
// between ranks carrying a header (ok, or failed at stage s on rank r; dtype, device kind, shape) and then the
// activation, over the CPU, with blocking sends and receives. A stage that throws (a shape mismatch, a loss_fn that
// rejects its target) does not stop the pass: the failure travels downstream instead of the tensor, one all_reduce
// over the group agrees on the first failure and a broadcast carries its message, so that every rank throws the same
// braid::Error instead of leaving the others waiting forever. Two uses: the executor's check at the first step
// (micro-batch 0, stages in eval mode, the loss on the last stage; it learns the boundary shapes), and
// Pipeline::forward (evaluation at any batch size, the stages in the mode the user left them).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "braid/core/tensor.h"
#include "braid/dist/pipeline_executor.h"

namespace braid::dist::detail {

struct BoundaryMeta {
  Shape shape;
  DType dtype = DType::Float32;
};

// A problem this rank found before the pass (its input's or target's batch), charged to one of its stages.
struct EarlyFailure {
  int stage = 0;
  std::string message;
};

enum class PassKind { FirstStepCheck, Forward };

struct StagePass {
  const std::vector<nn::Sequential>& stages;  // this rank's, in stage order
  ProcessGroup& group;
  const Schedule& schedule;
  const PipelineLossFn& loss_fn;
  Tensor input;   // micro-batch 0, on the rank of stage 0
  Tensor target;  // micro-batch 0, on the rank of the last stage
  std::optional<EarlyFailure> early;
  int tag = 0;  // the tag of every message of the pass
  PassKind kind = PassKind::FirstStepCheck;
};

struct StagePassResult {
  // [s]: what stage s hands to stage s + 1, where this rank holds either of them.
  std::vector<std::optional<BoundaryMeta>> boundary;
  // [local stage]: where the stage computes (its first parameter's device, else its input's).
  std::vector<Device> stage_device;
  // Every rank's stages compute on CUDA (so activations may cross over NCCL).
  bool all_cuda = false;
  // The last stage's output, on its rank.
  Tensor output;
};

// Runs the pass on every rank of the group; throws the same braid::Error on every rank when a stage failed.
StagePassResult check_first_step(const StagePass& check);

// Pipeline::forward: `input` (read on the rank of stage 0) through this rank's `stages` of `schedule`; returns the
// last stage's output on its rank and an undefined tensor elsewhere.
Tensor forward_through_stages(const std::vector<nn::Sequential>& stages, ProcessGroup& group, const Schedule& schedule,
                              const Tensor& input);

}  // namespace braid::dist::detail
