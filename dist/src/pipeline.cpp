#include "braid/dist/pipeline.h"

#include <algorithm>
#include <string>
#include <utility>

#include "braid/core/creation.h"
#include "braid/core/error.h"
#include "pipeline_stage_pass.h"

namespace braid::dist {
namespace {

void check_group(const std::shared_ptr<ProcessGroup>& group) {
  BRAID_CHECK(group != nullptr, "Pipeline: the pipeline group is null");
  BRAID_CHECK(group->is_member(), "Pipeline: this rank is not a member of the pipeline group");
}

std::vector<nn::Sequential> split_for(const nn::Sequential& model, const std::shared_ptr<ProcessGroup>& group,
                                      const PipelineOptions& options) {
  check_group(group);
  BRAID_CHECK(options.virtual_stages >= 1, "Pipeline: virtual_stages must be at least 1, got ", options.virtual_stages);
  return split_by_parameter_count(model, group->size() * options.virtual_stages);
}

// The stages s with s % p == rank, in stage order.
std::vector<nn::Sequential> own_stages(const std::vector<nn::Sequential>& stages, int rank, int p) {
  std::vector<nn::Sequential> mine;
  for (size_t s = size_t(rank); s < stages.size(); s += size_t(p)) mine.push_back(stages[s]);
  return mine;
}

Schedule schedule_for(size_t num_stages, int p, const PipelineOptions& options) {
  BRAID_CHECK(options.virtual_stages >= 1, "Pipeline: virtual_stages must be at least 1, got ", options.virtual_stages);
  BRAID_CHECK(num_stages == size_t(p) * size_t(options.virtual_stages), "Pipeline: the model has ", num_stages,
              " stages, a pipeline group of ", p, " ranks with ", options.virtual_stages,
              " virtual stages per rank needs ", p * options.virtual_stages);
  return make_schedule(options.schedule, p, options.virtual_stages, options.microbatches);
}

// The batch size a rank passed: -1 when it passed no tensor, -2 when the tensor has no batch dimension.
int64_t batch_of(const Tensor& t) {
  if (!t.defined()) return -1;
  return t.dim() >= 1 ? t.shape()[0] : -2;
}

}  // namespace

Pipeline::Pipeline(std::vector<nn::Sequential> stages, std::shared_ptr<ProcessGroup> group, PipelineOptions options,
                   PipelineLossFn loss_fn) {
  check_group(group);
  const int p = group->size(), rank = group->rank();
  Schedule schedule = schedule_for(stages.size(), p, options);
  executor_ = std::make_unique<PipelineExecutor>(own_stages(stages, rank, p), group, std::move(schedule),
                                                 std::move(loss_fn), options.executor);
  group_ = std::move(group);
}

Pipeline::Pipeline(const nn::Sequential& model, std::shared_ptr<ProcessGroup> group, PipelineOptions options,
                   PipelineLossFn loss_fn)
    : Pipeline(split_for(model, group, options), group, options, std::move(loss_fn)) {}

Pipeline::~Pipeline() = default;

// Every rank's [input, target] batch sizes (batch_of), gathered on every rank.
std::vector<int64_t> Pipeline::gather_batch_sizes(const Tensor& input, const Tensor& target) {
  Tensor mine = from_vector(std::vector<int64_t>{batch_of(input), batch_of(target)}, {2});
  Tensor all = mine;
  if (group_->size() > 1) {
    all = zeros({2 * int64_t(group_->size())}, TensorOptions(DType::Int64, Device::cpu()));
    group_->all_gather(all, mine)->wait();
  }
  const int64_t* n = all.data<int64_t>();
  return std::vector<int64_t>(n, n + all.numel());
}

// Every rank sees every rank's batch sizes, so a problem with any of them is the same error everywhere.
void Pipeline::check_step_inputs(const Tensor& input, const Tensor& target) {
  const std::vector<int64_t> n = gather_batch_sizes(input, target);
  const int p = group_->size(), m = schedule().num_microbatches;
  const int last = schedule().rank_of_stage(schedule().num_stages() - 1);
  if (first_batch_.empty()) first_batch_.assign(size_t(p), -1);
  for (int r = 0; r < p; ++r) {
    const int64_t in = n[size_t(2 * r)], tgt = n[size_t(2 * r + 1)];
    BRAID_CHECK(in != -2 && tgt != -2, "Pipeline::step: rank ", r, "'s ", in == -2 ? "input" : "target",
                " has no batch dimension");
    BRAID_CHECK(r != 0 || in >= 0, "Pipeline::step: rank 0 holds stage 0 and was given no input");
    BRAID_CHECK(r != last || tgt >= 0, "Pipeline::step: rank ", r, " holds the last stage and was given no target");
    BRAID_CHECK(in < 0 || tgt < 0 || in == tgt, "Pipeline::step: rank ", r, "'s input has batch size ", in,
                " and its target ", tgt, ", expected the same");
    const int64_t b = in >= 0 ? in : tgt, want = first_batch_[size_t(r)];
    BRAID_CHECK(b < 0 || b % m == 0, "Pipeline::step: rank ", r, "'s batch size ", b,
                " is not divisible by the number of micro-batches ", m);
    BRAID_CHECK(b < 0 || want < 0 || b == want, "Pipeline::step: rank ", r, "'s batch size ", b,
                " differs from the first step's ", want,
                " (activation shapes are exchanged once; use forward() for other sizes)");
  }
  for (int r = 0; r < p; ++r)
    if (first_batch_[size_t(r)] < 0) first_batch_[size_t(r)] = std::max(n[size_t(2 * r)], n[size_t(2 * r + 1)]);
}

Tensor Pipeline::step(const Tensor& input, const Tensor& target) {
  check_step_inputs(input, target);
  return executor_->step(input, target);
}

Tensor Pipeline::forward(const Tensor& input) {
  return detail::forward_through_stages(stages(), *group_, schedule(), input);
}

std::vector<Tensor> Pipeline::parameters() const {
  std::vector<Tensor> params;
  for (const auto& stage : stages())
    for (const Tensor& p : stage->parameters()) params.push_back(p);
  return params;
}

std::vector<std::pair<std::string, Tensor>> Pipeline::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> params;
  for (const auto& stage : stages())
    for (auto& named : stage->named_parameters()) params.push_back(std::move(named));
  return params;
}

const std::vector<nn::Sequential>& Pipeline::stages() const { return executor_->stages(); }
const Schedule& Pipeline::schedule() const { return executor_->schedule(); }
PipelineExecutor& Pipeline::executor() { return *executor_; }
bool Pipeline::holds_last_stage() const {
  return schedule().rank_of_stage(schedule().num_stages() - 1) == group_->rank();
}

}  // namespace braid::dist
