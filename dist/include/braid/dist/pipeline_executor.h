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
// Shapes: the first step sends each boundary's activation shape and dtype once, ahead of the first activation;
// later steps reuse it, and a stage output whose shape differs from it is an error. Messages are told apart by tag
// (direction, stage, micro-batch), so this needs a backend with tags (MPI).
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

class PipelineExecutor {
 public:
  // Throws braid::Error when the group is null or this rank is not in it, when the schedule's rank count is not the
  // group's size or its stages per rank is not stages.size(), or when validate() rejects the schedule.
  PipelineExecutor(std::vector<nn::Sequential> stages, std::shared_ptr<ProcessGroup> group, Schedule schedule,
                   PipelineLossFn loss_fn);
  ~PipelineExecutor();
  PipelineExecutor(const PipelineExecutor&) = delete;
  PipelineExecutor& operator=(const PipelineExecutor&) = delete;

  // One training step's forward and backward (no optimizer step): gradients are summed into the .grad of this
  // rank's parameters. `input` is read on the rank of stage 0 and `target` on the rank of the last stage; each
  // one given (defined) must have a batch size that M divides, and the same batch size as at the first step.
  // Returns the full batch's mean loss (detached) on the last stage's rank, and an undefined tensor elsewhere.
  Tensor step(const Tensor& input, const Tensor& target);

  const Schedule& schedule() const;
  const std::vector<nn::Sequential>& stages() const;
  // The most micro-batches whose activations this rank held at once (F run, its I or B not yet) in the last step.
  int peak_in_flight() const;
  const PipelineStepStats& last_step_stats() const;

 private:
  std::unique_ptr<detail::PipelineExecutorState> state_;
};

}  // namespace braid::dist
