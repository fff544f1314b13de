#include "braid/dist/pipeline_executor.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "braid/core/creation.h"
#include "braid/core/error.h"
#include "braid/core/ops.h"
#include "braid/dist/pipeline_validator.h"
#include "braid/nn/autograd.h"
#include "braid/nn/functional.h"
#include "pipeline_stage_pass.h"
#include "pipeline_trace.h"

namespace braid::dist {
namespace {

constexpr int64_t kMaxTag = 32767;

using ActivationMeta = detail::BoundaryMeta;

// The sends and receives of one run of consecutive communication actions, posted as one batch (no tags).
struct PendingBatch {
  std::vector<P2POp> ops;
  std::vector<WorkHandle*> receivers;  // where each receive's Work goes
};

// What one stage keeps for one micro-batch between its actions.
struct Slot {
  Tensor input;        // past stage 0 a leaf that requires grad, so B and I can give its gradient
  Tensor root;         // the output, or on the last stage the scaled loss
  Tensor output_grad;  // undefined on the last stage (a one-element root starts from ones)
  Tensor input_grad;
  WorkHandle input_recv;
  WorkHandle grad_recv;
  autograd::DeferredWeightGrad weight_grad;  // what I left for W (none when the stage has no graph)
  bool awaiting_weight = false;              // between I and W
};

enum class Direction { Activation = 0, Gradient = 1 };

}  // namespace

namespace detail {

struct PipelineExecutorState {
  std::vector<nn::Sequential> stages;
  std::shared_ptr<ProcessGroup> group;
  Schedule schedule;
  PipelineLossFn loss_fn;
  PipelineExecutorOptions options;
  int rank = 0;
  bool checked = false;              // the first step's check pass has passed
  bool in_order = false;             // no tags: runs of sends and receives go out as one batch
  Device transport = Device::cpu();  // where tensors cross ranks
  std::vector<Device> stage_device;  // [local stage]
  PendingBatch batch;
  int64_t batch_size = -1;
  std::vector<std::optional<ActivationMeta>> boundary;  // [s]: what stage s sends to stage s + 1
  std::vector<std::vector<Slot>> slots;                 // [local stage][micro-batch]
  std::vector<std::pair<WorkHandle, Tensor>> sends;     // the tensor lives until its send is done
  std::vector<Tensor> inputs, targets;
  Tensor loss;
  int in_flight = 0, peak = 0;
  PipelineStepStats stats;

  int num_microbatches() const { return schedule.num_microbatches; }
  int last_stage() const { return schedule.num_stages() - 1; }
  bool holds(int stage) const { return stage >= 0 && stage <= last_stage() && schedule.rank_of_stage(stage) == rank; }
  int local(int stage) const { return stage / schedule.num_ranks; }
  Slot& slot(int stage, int microbatch) { return slots[size_t(local(stage))][size_t(microbatch)]; }
  Device device(int stage) const { return stage_device[size_t(local(stage))]; }
  // Distinct per direction, sending stage and micro-batch; micro-batch M is the first step's check pass.
  int tag(Direction d, int sender_stage, int microbatch) const {
    return (int(d) * schedule.num_stages() + sender_stage) * (num_microbatches() + 1) + microbatch;
  }
};

}  // namespace detail

namespace {

using State = detail::PipelineExecutorState;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Waits for a receive, counting the time blocked as wait rather than compute.
void wait_for(State& st, WorkHandle& work) {
  const auto start = Clock::now();
  work->wait();
  work.reset();
  st.stats.wait += seconds_since(start);
}

std::string where(const Action& a) { return "PipelineExecutor: " + to_string(a); }

std::vector<Tensor> split_batch(State& st, const Tensor& t, const char* what) {
  if (!t.defined()) return {};
  BRAID_CHECK(t.dim() >= 1, "PipelineExecutor::step: the ", what, " must have a batch dimension, got shape ",
              shape_str(t.shape()));
  const int64_t n = t.shape()[0], m = st.num_microbatches();
  BRAID_CHECK(n % m == 0, "PipelineExecutor::step: the ", what, "'s batch size ", n,
              " is not divisible by the number of micro-batches ", m);
  if (st.batch_size < 0) st.batch_size = n;
  BRAID_CHECK(n == st.batch_size, "PipelineExecutor::step: the ", what, "'s batch size ", n,
              " differs from the first step's ", st.batch_size, " (activation shapes are exchanged once)");
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < m; ++i) parts.push_back(ops::contiguous(ops::narrow(t, 0, i * (n / m), n / m)));
  return parts;
}

// Over a tagged transport each send and receive is posted at once; without tags they wait for flush_batch().
void post_send(State& st, const Tensor& t, int dst, int tag) {
  Tensor on_wire = ops::contiguous(ops::to_device(t, st.transport));
  if (st.in_order) {
    st.batch.ops.push_back(P2POp::isend(on_wire, dst, 0));
    return;
  }
  st.sends.emplace_back(st.group->send(on_wire, dst, tag), on_wire);
}

void post_recv(State& st, const Tensor& buffer, int src, int tag, WorkHandle& work) {
  if (st.in_order) {
    st.batch.ops.push_back(P2POp::irecv(buffer, src, 0));
    st.batch.receivers.push_back(&work);
    return;
  }
  work = st.group->recv(buffer, src, tag);
}

void flush_batch(State& st) {
  if (st.batch.ops.empty()) return;
  WorkHandle work = st.group->batch_isend_irecv(st.batch.ops);
  for (WorkHandle* receiver : st.batch.receivers) *receiver = work;
  for (const P2POp& op : st.batch.ops)
    if (op.kind == P2POp::Kind::ISend) st.sends.emplace_back(work, op.tensor);
  st.batch = PendingBatch{};
}

void send_activation(State& st, const Action& a) {
  Slot& slot = st.slot(a.stage, a.microbatch);
  BRAID_CHECK(slot.root.defined(), where(a), ": the stage's forward has not run");
  Tensor out = slot.root.detach();
  const auto& meta = st.boundary[size_t(a.stage)];
  BRAID_CHECK(meta.has_value(), where(a), ": stage ", a.stage, "'s output shape was not exchanged");
  BRAID_CHECK(out.shape() == meta->shape && out.dtype() == meta->dtype, where(a), ": stage ", a.stage, " output is ",
              shape_str(out.shape()), " ", out.dtype(), ", the first step's was ", shape_str(meta->shape), " ",
              meta->dtype);
  post_send(st, out, st.schedule.rank_of_stage(a.stage + 1), st.tag(Direction::Activation, a.stage, a.microbatch));
}

void recv_activation(State& st, const Action& a) {
  const auto& meta = st.boundary[size_t(a.stage - 1)];
  BRAID_CHECK(meta.has_value(), where(a), ": stage ", a.stage - 1, "'s output shape was not exchanged");
  Slot& slot = st.slot(a.stage, a.microbatch);
  slot.input = empty(meta->shape, TensorOptions(meta->dtype, st.transport));
  post_recv(st, slot.input, st.schedule.rank_of_stage(a.stage - 1),
            st.tag(Direction::Activation, a.stage - 1, a.microbatch), slot.input_recv);
}

void send_gradient(State& st, const Action& a) {
  Slot& slot = st.slot(a.stage, a.microbatch);
  BRAID_CHECK(slot.input_grad.defined(), where(a), ": the stage's input gradient has not been computed");
  post_send(st, slot.input_grad, st.schedule.rank_of_stage(a.stage - 1),
            st.tag(Direction::Gradient, a.stage, a.microbatch));
  slot.input_grad = Tensor();
}

void recv_gradient(State& st, const Action& a) {
  Slot& slot = st.slot(a.stage, a.microbatch);
  BRAID_CHECK(slot.root.defined(), where(a), ": the stage's forward has not run");
  slot.output_grad = empty(slot.root.shape(), TensorOptions(slot.root.dtype(), st.transport));
  post_recv(st, slot.output_grad, st.schedule.rank_of_stage(a.stage + 1),
            st.tag(Direction::Gradient, a.stage + 1, a.microbatch), slot.grad_recv);
}

// The stage's input: the micro-batch on stage 0, else the received activation or the output of the previous stage
// on this rank, as a fresh leaf so that the backward stops at the stage boundary.
Tensor stage_input(State& st, const Action& a) {
  if (a.stage == 0) return ops::to_device(st.inputs[size_t(a.microbatch)], st.device(0));
  Slot& slot = st.slot(a.stage, a.microbatch);
  if (slot.input_recv) {
    wait_for(st, slot.input_recv);
    return ops::to_device(slot.input, st.device(a.stage)).requires_grad_(true);
  }
  BRAID_CHECK(st.holds(a.stage - 1) && st.slot(a.stage - 1, a.microbatch).root.defined(), where(a),
              ": no input (no RECV_F before it, and stage ", a.stage - 1, "'s forward did not run on this rank)");
  return ops::to_device(st.slot(a.stage - 1, a.microbatch).root.detach(), st.device(a.stage)).requires_grad_(true);
}

void forward(State& st, const Action& a) {
  Slot& slot = st.slot(a.stage, a.microbatch);
  slot.input = stage_input(st, a);
  Tensor out = st.stages[size_t(st.local(a.stage))]->forward(slot.input);
  if (a.stage == st.last_stage()) {
    Tensor loss = st.loss_fn(out, st.targets[size_t(a.microbatch)]) * (1.0 / st.num_microbatches());
    BRAID_CHECK(loss.numel() == 1, where(a), ": the loss must have one element, got ", shape_str(loss.shape()));
    st.loss = st.loss.defined() ? st.loss + loss.detach() : loss.detach();
    out = loss;
  }
  slot.root = out;
  st.peak = std::max(st.peak, ++st.in_flight);
}

// The gradient for the stage's root: received, handed over by the next stage on this rank, or (last stage) none.
Tensor output_grad(State& st, const Action& a) {
  if (a.stage == st.last_stage()) return Tensor();
  Slot& slot = st.slot(a.stage, a.microbatch);
  if (slot.grad_recv) {
    wait_for(st, slot.grad_recv);
    slot.output_grad = ops::to_device(slot.output_grad, st.device(a.stage));
    return slot.output_grad;
  }
  if (!slot.output_grad.defined() && st.holds(a.stage + 1)) {
    Slot& next = st.slot(a.stage + 1, a.microbatch);
    if (next.input_grad.defined()) slot.output_grad = ops::to_device(next.input_grad, st.device(a.stage));
    next.input_grad = Tensor();
  }
  BRAID_CHECK(slot.output_grad.defined(), where(a), ": no gradient for the stage's output (no RECV_B before it, and ",
              "stage ", a.stage + 1, "'s backward did not run on this rank)");
  return slot.output_grad;
}

void check_forward_ran(State& st, const Action& a) {
  BRAID_CHECK(st.slot(a.stage, a.microbatch).root.defined(), where(a), ": the stage's forward has not run");
}

void full_backward(State& st, const Action& a) {
  check_forward_ran(st, a);
  Slot& slot = st.slot(a.stage, a.microbatch);
  Tensor grad = output_grad(st, a);
  // A first stage without parameters has no graph: its input needs no gradient either.
  if (slot.root.requires_grad()) autograd::backward({slot.root}, {grad});
  if (a.stage > 0) slot.input_grad = slot.input.grad();
  slot.root = slot.input = slot.output_grad = Tensor();
  --st.in_flight;
}

void backward_input(State& st, const Action& a) {
  check_forward_ran(st, a);
  Slot& slot = st.slot(a.stage, a.microbatch);
  Tensor grad = output_grad(st, a);
  // Only the input path runs now; the nodes that also lead to a weight keep their gradient, and W applies just
  // those, so W repeats none of I's work.
  if (slot.root.requires_grad()) {
    std::vector<Tensor> inputs, weights;
    if (a.stage > 0) inputs.push_back(slot.input);
    for (const Tensor& p : st.stages[size_t(st.local(a.stage))]->parameters())
      if (p.requires_grad()) weights.push_back(p);
    autograd::SplitBackward split = autograd::backward_input({slot.root}, {grad}, inputs, weights);
    if (a.stage > 0) slot.input_grad = split.input_grads[0];
    slot.weight_grad = std::move(split.weight);
  }
  slot.root = slot.input = slot.output_grad = Tensor();
  slot.awaiting_weight = true;
  --st.in_flight;
}

void backward_weight(State& st, const Action& a) {
  Slot& slot = st.slot(a.stage, a.microbatch);
  BRAID_CHECK(slot.awaiting_weight, where(a), ": the stage's backward for the input (I) has not run");
  slot.awaiting_weight = false;
  if (slot.weight_grad.pending()) slot.weight_grad.run();
  slot.weight_grad = autograd::DeferredWeightGrad();
}

void run(State& st, const Action& a) {
  switch (a.kind) {
    case ActionKind::Forward:
      forward(st, a);
      return;
    case ActionKind::BackwardInput:
      backward_input(st, a);
      return;
    case ActionKind::BackwardWeight:
      backward_weight(st, a);
      return;
    case ActionKind::FullBackward:
      full_backward(st, a);
      return;
    case ActionKind::SendActivation:
      send_activation(st, a);
      return;
    case ActionKind::RecvActivation:
      recv_activation(st, a);
      return;
    case ActionKind::SendGradient:
      send_gradient(st, a);
      return;
    case ActionKind::RecvGradient:
      recv_gradient(st, a);
      return;
  }
}

void timed_run(State& st, const Action& a) {
  const auto start = Clock::now();
  const double waited_before = st.stats.wait;
  detail::TracedAction traced(a);
  run(st, a);
  if (is_compute(a.kind)) st.stats.compute += seconds_since(start);
  traced.finish(st.stats.wait - waited_before);
}

void check_setup(const std::vector<nn::Sequential>& stages, const std::shared_ptr<ProcessGroup>& group,
                 const Schedule& schedule, const PipelineLossFn& loss_fn, const PipelineExecutorOptions& options) {
  BRAID_CHECK(group != nullptr, "PipelineExecutor: the pipeline group is null");
  BRAID_CHECK(group->is_member(), "PipelineExecutor: this rank is not a member of the pipeline group");
  BRAID_CHECK(schedule.num_ranks == group->size(), "PipelineExecutor: the schedule is for ", schedule.num_ranks,
              " ranks (", schedule.num_stages(), " stages), the pipeline group has ", group->size());
  BRAID_CHECK(int64_t(stages.size()) == schedule.stages_per_rank, "PipelineExecutor: rank ", group->rank(), " holds ",
              stages.size(), " stages, the schedule places ", schedule.stages_per_rank, " on each rank (",
              schedule.num_stages(), " stages over ", schedule.num_ranks, " ranks)");
  BRAID_CHECK(loss_fn != nullptr, "PipelineExecutor: the loss function is empty");
  // Every message gets its own tag (State::tag); MPI guarantees tags up to kMaxTag only.
  const int64_t max_tag = 2 * int64_t(schedule.num_stages()) * (schedule.num_microbatches + 1) - 1;
  BRAID_CHECK(max_tag <= kMaxTag, "PipelineExecutor: ", schedule.num_stages(), " stages and ",
              schedule.num_microbatches, " micro-batches need message tags up to ", max_tag, ", more than the ",
              kMaxTag, " every MPI provides");
  validate(schedule, std::nullopt, options.in_order_p2p ? P2POrdering::InOrder : P2POrdering::Tagged);
}

void load_batch(State& st, const Tensor& input, const Tensor& target) {
  st.inputs = split_batch(st, input, "input");
  st.targets = split_batch(st, target, "target");
  BRAID_CHECK(!st.holds(0) || !st.inputs.empty(), "PipelineExecutor::step: rank ", st.rank,
              " holds stage 0 and needs the input");
  BRAID_CHECK(!st.holds(st.last_stage()) || !st.targets.empty(), "PipelineExecutor::step: rank ", st.rank,
              " holds the last stage and needs the target");
}

// NCCL carries CUDA tensors between ranks, without tags; MPI carries CPU tensors.
bool crosses_over_nccl([[maybe_unused]] const State& st, [[maybe_unused]] bool all_cuda) {
#if BRAID_WITH_NCCL
  return all_cuda && st.group->size() > 1;
#else
  return false;
#endif
}

// The first step's check pass (see pipeline_stage_pass.h): an error in this rank's batch becomes its stage's
// failure, so that every rank throws it. It learns the boundary shapes, the stages' devices and the transport.
void check_first_step(State& st, const Tensor& input, const Tensor& target) {
  std::optional<detail::EarlyFailure> early;
  try {
    load_batch(st, input, target);
  } catch (const Error& e) {
    early = detail::EarlyFailure{st.rank, e.what()};
  }
  const bool ok = !early;
  detail::StagePassResult result = detail::check_first_step(
      {st.stages, *st.group, st.schedule, st.loss_fn, ok && st.holds(0) ? st.inputs[0] : Tensor(),
       ok && st.holds(st.last_stage()) ? st.targets[0] : Tensor(), early,
       st.tag(Direction::Activation, 0, st.num_microbatches())});
  st.boundary = std::move(result.boundary);
  st.stage_device = std::move(result.stage_device);
  const bool nccl = crosses_over_nccl(st, result.all_cuda);
  st.transport = nccl ? st.stage_device.front() : Device::cpu();
  st.in_order = nccl || st.options.in_order_p2p;
  if (nccl && !st.options.in_order_p2p) validate(st.schedule, std::nullopt, P2POrdering::InOrder);
  st.checked = true;
}

}  // namespace

PipelineExecutor::PipelineExecutor(std::vector<nn::Sequential> stages, std::shared_ptr<ProcessGroup> group,
                                   Schedule schedule, PipelineLossFn loss_fn, PipelineExecutorOptions options)
    : state_(std::make_unique<detail::PipelineExecutorState>()) {
  check_setup(stages, group, schedule, loss_fn, options);
  State& st = *state_;
  st.rank = group->rank();
  st.boundary.resize(size_t(schedule.num_stages()));
  st.stages = std::move(stages);
  st.group = std::move(group);
  st.schedule = std::move(schedule);
  st.loss_fn = std::move(loss_fn);
  st.options = options;
  st.in_order = options.in_order_p2p;
}

// Sends still outstanding here belong to a step that threw: their receivers may be gone, so they are not waited for
// (the group keeps their tensors until they finish).
PipelineExecutor::~PipelineExecutor() = default;

Tensor PipelineExecutor::step(const Tensor& input, const Tensor& target) {
  State& st = *state_;
  if (st.checked)
    load_batch(st, input, target);
  else
    check_first_step(st, input, target);
  st.batch = PendingBatch{};
  st.slots.assign(st.stages.size(), std::vector<Slot>(size_t(st.num_microbatches())));
  st.loss = Tensor();
  st.in_flight = st.peak = 0;
  const auto step_start = Clock::now();
  st.stats = PipelineStepStats{};
  for (const Action& a : st.schedule.actions[size_t(st.rank)]) {
    if (is_compute(a.kind)) flush_batch(st);
    timed_run(st, a);
  }
  flush_batch(st);
  for (auto& send : st.sends) send.first->wait();
  st.sends.clear();
  st.slots.clear();
  st.stats.step = seconds_since(step_start);
  st.stats.compute -= st.stats.wait;
  return st.holds(st.last_stage()) ? st.loss : Tensor();
}

const Schedule& PipelineExecutor::schedule() const { return state_->schedule; }
const std::vector<nn::Sequential>& PipelineExecutor::stages() const { return state_->stages; }
int PipelineExecutor::peak_in_flight() const { return state_->peak; }
const PipelineStepStats& PipelineExecutor::last_step_stats() const { return state_->stats; }
bool PipelineExecutor::in_order_p2p() const { return state_->in_order; }

}  // namespace braid::dist
