// PipelineExecutor: runs one rank's part of a pipeline Schedule on real stages. Every rank of the pipeline group
// constructs one with the same schedule, holding the stages s with s % p == rank (in stage order), and calls step()
// with the same batch: step() splits it into the schedule's M micro-batches and runs this rank's action list in
// order, as torch.distributed.pipelining's schedules do.
//
// - F runs the stage on its input (the batch's micro-batch on stage 0, the received or handed-over activation
//   elsewhere) and keeps the graph; on the last stage it also computes loss_fn(output, target) / M, so the summed
//   gradients are those of the full batch's mean loss.
// - B backpropagates through the stage, summing into the parameters' .grad and giving the input's gradient.
// - I takes the input's gradient only (autograd::grad, graph retained); W later takes the parameters' gradients
//   from the same graph and sums them into .grad. No layer is special-cased.
// - SEND_*/RECV_* use the group's non-blocking send/recv: a receive is posted at its action and waited for by the
//   compute that reads it; sends are kept alive until the end of the step. Stages on one rank hand over in place.
//
// The first step (and each later one until a check pass has succeeded) starts with a check pass: micro-batch 0 goes
// through the stages in stage order under no-grad, and a stage that throws (its input's shape, a loss_fn that
// rejects the target, any error) makes every rank throw the same braid::Error naming the stage, the rank and the
// original message, instead of leaving the other ranks waiting. The pass also exchanges each boundary's activation
// shape and dtype, once; later steps reuse them, and a stage output whose shape differs is an error.
//
// Devices: a stage computes on its first parameter's device (else its input's); received activations and gradients
// land on it. Tensors cross ranks on CUDA over NCCL when every rank's stages are on CUDA and Braid has NCCL, else on
// the CPU over MPI, and are moved where they differ. Over MPI messages are told apart by tag (direction, stage,
// micro-batch). NCCL has no tags: there each run of consecutive sends and receives of a rank's list is posted as one
// batch_isend_irecv with tag 0, and the schedule must pass validate(..., P2POrdering::InOrder).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "braid/core/tensor.h"
#include "braid/dist/pipeline_schedule.h"
#include "braid/dist/process_group.h"
#include "braid/nn/containers.h"

namespace braid::dist {

namespace detail {
struct PipelineExecutorState;
}

// The loss of the last stage: (output of the last stage, the micro-batch's target) -> one-element tensor.
using PipelineLossFn = std::function<Tensor(const Tensor& output, const Tensor& target)>;

// Wall-clock seconds of this rank's last step(). Compute excludes the time a compute action spent waiting for its
// received input or gradient, which is counted in wait; the rest of step is the rank's idle time between actions.
struct PipelineStepStats {
  double step = 0.0;
  double compute = 0.0;
  double wait = 0.0;
};

struct PipelineExecutorOptions {
  // Run the transport without tags (one batch_isend_irecv per run of sends and receives, matched in order) over MPI
  // as well, as it runs over NCCL; the schedule must then pass validate(..., P2POrdering::InOrder).
  bool in_order_p2p = false;
};

class PipelineExecutor {
 public:
  // Throws braid::Error when the group is null or this rank is not in it, when the schedule's rank count is not the
  // group's size or its stages per rank is not stages.size(), or when validate() rejects the schedule.
  PipelineExecutor(std::vector<nn::Sequential> stages, std::shared_ptr<ProcessGroup> group, Schedule schedule,
                   PipelineLossFn loss_fn, PipelineExecutorOptions options = {});
  ~PipelineExecutor();
  PipelineExecutor(const PipelineExecutor&) = delete;
  PipelineExecutor& operator=(const PipelineExecutor&) = delete;

  // One training step's forward and backward (no optimizer step): gradients are summed into the .grad of this
  // rank's parameters. `input` is read on the rank of stage 0 and `target` on the rank of the last stage; each
  // one given (defined) must have a batch size that M divides, and the same batch size as at the first step (at the
  // first step, a violation throws on every rank; later, on the ranks given the tensor).
  // Returns the full batch's mean loss (detached) on the last stage's rank, and an undefined tensor elsewhere.
  Tensor step(const Tensor& input, const Tensor& target);

  const Schedule& schedule() const;
  const std::vector<nn::Sequential>& stages() const;
  // The most micro-batches whose activations this rank held at once (F run, its I or B not yet) in the last step.
  int peak_in_flight() const;
  const PipelineStepStats& last_step_stats() const;
  // Whether sends and receives run without tags, batched: in_order_p2p, or NCCL (known after the first step).
  bool in_order_p2p() const;

 private:
  std::unique_ptr<detail::PipelineExecutorState> state_;
};

}  // namespace braid::dist
