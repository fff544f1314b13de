// Pipeline: the model-level front of pipeline parallelism. A model given as its ordered list of stages (the same
// list on every rank of the pipeline group), or as one Sequential split by parameter count into p * v stages, is
// placed round-robin on the group (stage s on rank s % p, v virtual stages per rank); this rank keeps its own
// stages, builds the schedule the options name and trains through a PipelineExecutor:
//
//   dist::Pipeline pipe(model, dist::world(), {.schedule = dist::ScheduleKind::OneFOneB, .microbatches = 4}, loss);
//   optim::SGD optimizer(pipe.parameters(), {.lr = 0.1});
//   optimizer.zero_grad(); Tensor loss = pipe.step(x, y); optimizer.step();   // loss defined on the last rank
//
// Errors in what the ranks pass to step() (a missing input or target, a batch that M does not divide, a batch size
// that changed) are found from one small all_gather of the ranks' batch sizes, so every rank throws the same
// braid::Error instead of some waiting for a message that never comes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "braid/core/tensor.h"
#include "braid/dist/pipeline_executor.h"
#include "braid/dist/pipeline_schedule.h"
#include "braid/dist/process_group.h"
#include "braid/nn/containers.h"

namespace braid::dist {

enum class ScheduleKind { GPipe, OneFOneB, Interleaved, ZeroBubble };

// "gpipe", "1f1b", "interleaved" or "zb".
std::string to_string(ScheduleKind kind);
// The inverse of to_string; throws braid::Error naming the text and listing the choices.
ScheduleKind parse_schedule_kind(std::string_view name);

// The provided schedule of `kind` for p ranks, v stages per rank and M micro-batches. Only Interleaved takes v > 1
// (and then M a multiple of p); Interleaved with v = 1 is 1F1B.
Schedule make_schedule(ScheduleKind kind, int num_ranks, int stages_per_rank, int num_microbatches);

// `model` cut into `num_stages` contiguous, non-empty slices (sharing the model's modules, named as in the model)
// whose parameter counts are as even as the module boundaries allow (the sum of the squared stage sizes is least;
// a module without parameters stays with the stage before it). Throws when num_stages < 1 or the model has fewer
// modules than num_stages.
std::vector<nn::Sequential> split_by_parameter_count(const nn::Sequential& model, int num_stages);

struct PipelineOptions {
  ScheduleKind schedule = ScheduleKind::OneFOneB;
  int microbatches = 1;    // M: each step's batch is cut into M equal micro-batches
  int virtual_stages = 1;  // v: stages per rank (> 1 only with Interleaved)
  PipelineExecutorOptions executor = {};
};

class Pipeline {
 public:
  // `stages` is the whole model, p * v stages in order, the same list on every rank. Throws braid::Error (on every
  // rank alike) when the group is null or this rank is not in it, when the list is not p * v stages long, or when
  // the options do not make a schedule.
  Pipeline(std::vector<nn::Sequential> stages, std::shared_ptr<ProcessGroup> group, PipelineOptions options,
           PipelineLossFn loss_fn);
  // `model` split by split_by_parameter_count into p * v stages.
  Pipeline(const nn::Sequential& model, std::shared_ptr<ProcessGroup> group, PipelineOptions options,
           PipelineLossFn loss_fn);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // One training step's forward and backward (gradients summed into this rank's parameters' .grad; no optimizer
  // step). `input` is read on the rank of stage 0 and `target` on the rank of the last stage (other ranks may pass
  // them too, or undefined tensors). Returns the batch's mean loss on the last stage's rank, undefined elsewhere.
  Tensor step(const Tensor& input, const Tensor& target);

  // Evaluation: the input through every stage in order under no-grad, with blocking send/recv between the ranks;
  // any batch size. Returns the last stage's output on its rank, undefined elsewhere. An error in a stage is
  // thrown on every rank, naming the stage and its rank.
  Tensor forward(const Tensor& input);

  // This rank's stages' parameters, for its optimizer; named as in the full model.
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  // This rank's stages (stage rank, rank + p, ...).
  const std::vector<nn::Sequential>& stages() const;
  const Schedule& schedule() const;
  PipelineExecutor& executor();
  // True on the rank whose step() and forward() return the loss and the output.
  bool holds_last_stage() const;

 private:
  std::vector<int64_t> gather_batch_sizes(const Tensor& input, const Tensor& target);
  void check_step_inputs(const Tensor& input, const Tensor& target);

  std::shared_ptr<ProcessGroup> group_;
  std::unique_ptr<PipelineExecutor> executor_;
  std::vector<int64_t> first_batch_;  // per rank, the first step's batch size (-1: none given)
};

}  // namespace braid::dist
