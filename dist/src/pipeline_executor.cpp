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
#include "pipeline_trace.h"

namespace braid::dist {
namespace {

// The shape message: dtype, rank, then up to kMaxDims sizes.
constexpr int64_t kMaxDims = 8;
constexpr int64_t kMaxTag = 32767;

struct ActivationMeta {
  Shape shape;
  DType dtype = DType::Float32;
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
  int rank = 0;
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
  // Distinct per direction, sending stage and micro-batch; micro-batch M is the shape message.
  int tag(Direction d, int sender_stage, int microbatch) const {
    return (int(d) * schedule.num_stages() + sender_stage) * (num_microbatches() + 1) + microbatch;
  }
};

}  // namespace detail

namespace {

using State = detail::PipelineExecutorState;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

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

void send_tensor(State& st, Tensor t, int dst, int tag) { st.sends.emplace_back(st.group->send(t, dst, tag), t); }

Tensor shape_message(const ActivationMeta& meta) {
  std::vector<int64_t> v(size_t(2 + kMaxDims), 0);
  v[0] = int64_t(meta.dtype);
  v[1] = int64_t(meta.shape.size());
  std::copy(meta.shape.begin(), meta.shape.end(), v.begin() + 2);
  return from_vector(v, {2 + kMaxDims});
}

ActivationMeta receive_meta(State& st, const Action& a) {
  Tensor msg = zeros({2 + kMaxDims}, TensorOptions(DType::Int64, Device::cpu()));
  st.group
      ->recv(msg, st.schedule.rank_of_stage(a.stage - 1),
             st.tag(Direction::Activation, a.stage - 1, st.num_microbatches()))
      ->wait();
  const int64_t* v = msg.data<int64_t>();
  BRAID_CHECK(v[0] >= 0 && v[0] <= int64_t(DType::Int64) && v[1] >= 0 && v[1] <= kMaxDims, where(a),
              ": received a malformed activation shape message");
  return {Shape(v + 2, v + 2 + v[1]), DType(v[0])};
}

void send_activation(State& st, const Action& a) {
  Slot& slot = st.slot(a.stage, a.microbatch);
  BRAID_CHECK(slot.root.defined(), where(a), ": the stage's forward has not run");
  Tensor out = ops::contiguous(slot.root.detach());
  const int dst = st.schedule.rank_of_stage(a.stage + 1);
  auto& meta = st.boundary[size_t(a.stage)];
  if (!meta) {
    meta = ActivationMeta{out.shape(), out.dtype()};
    BRAID_CHECK(out.dim() <= kMaxDims, where(a), ": activations of more than ", kMaxDims, " dimensions, got ",
                shape_str(out.shape()));
    send_tensor(st, shape_message(*meta), dst, st.tag(Direction::Activation, a.stage, st.num_microbatches()));
  }
  BRAID_CHECK(out.shape() == meta->shape && out.dtype() == meta->dtype, where(a), ": stage ", a.stage, " output is ",
              shape_str(out.shape()), " ", out.dtype(), ", the first step's was ", shape_str(meta->shape), " ",
              meta->dtype);
  send_tensor(st, out, dst, st.tag(Direction::Activation, a.stage, a.microbatch));
}

void recv_activation(State& st, const Action& a) {
  auto& meta = st.boundary[size_t(a.stage - 1)];
  if (!meta) meta = receive_meta(st, a);
  Slot& slot = st.slot(a.stage, a.microbatch);
  slot.input = empty(meta->shape, TensorOptions(meta->dtype, Device::cpu()));
  slot.input_recv = st.group->recv(slot.input, st.schedule.rank_of_stage(a.stage - 1),
                                   st.tag(Direction::Activation, a.stage - 1, a.microbatch));
}

void send_gradient(State& st, const Action& a) {
  Slot& slot = st.slot(a.stage, a.microbatch);
  BRAID_CHECK(slot.input_grad.defined(), where(a), ": the stage's input gradient has not been computed");
  send_tensor(st, ops::contiguous(slot.input_grad), st.schedule.rank_of_stage(a.stage - 1),
              st.tag(Direction::Gradient, a.stage, a.microbatch));
  slot.input_grad = Tensor();
}

void recv_gradient(State& st, const Action& a) {
  Slot& slot = st.slot(a.stage, a.microbatch);
  BRAID_CHECK(slot.root.defined(), where(a), ": the stage's forward has not run");
  slot.output_grad = empty(slot.root.shape(), TensorOptions(slot.root.dtype(), Device::cpu()));
  slot.grad_recv = st.group->recv(slot.output_grad, st.schedule.rank_of_stage(a.stage + 1),
                                  st.tag(Direction::Gradient, a.stage + 1, a.microbatch));
}

// The stage's input: the micro-batch on stage 0, else the received activation or the output of the previous stage
// on this rank, as a fresh leaf so that the backward stops at the stage boundary.
Tensor stage_input(State& st, const Action& a) {
  if (a.stage == 0) return st.inputs[size_t(a.microbatch)];
  Slot& slot = st.slot(a.stage, a.microbatch);
  if (slot.input_recv) {
    wait_for(st, slot.input_recv);
    return slot.input.requires_grad_(true);
  }
  BRAID_CHECK(st.holds(a.stage - 1) && st.slot(a.stage - 1, a.microbatch).root.defined(), where(a),
              ": no input (no RECV_F before it, and stage ", a.stage - 1, "'s forward did not run on this rank)");
  return st.slot(a.stage - 1, a.microbatch).root.detach().requires_grad_(true);
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
    return slot.output_grad;
  }
  if (!slot.output_grad.defined() && st.holds(a.stage + 1)) {
    Slot& next = st.slot(a.stage + 1, a.microbatch);
    slot.output_grad = next.input_grad;
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
                 const Schedule& schedule, const PipelineLossFn& loss_fn) {
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
  validate(schedule);
}

}  // namespace

PipelineExecutor::PipelineExecutor(std::vector<nn::Sequential> stages, std::shared_ptr<ProcessGroup> group,
                                   Schedule schedule, PipelineLossFn loss_fn)
    : state_(std::make_unique<detail::PipelineExecutorState>()) {
  check_setup(stages, group, schedule, loss_fn);
  State& st = *state_;
  st.rank = group->rank();
  st.boundary.resize(size_t(schedule.num_stages()));
  st.stages = std::move(stages);
  st.group = std::move(group);
  st.schedule = std::move(schedule);
  st.loss_fn = std::move(loss_fn);
}

// Sends still outstanding here belong to a step that threw: their receivers may be gone, so they are not waited for
// (the group keeps their tensors until they finish).
PipelineExecutor::~PipelineExecutor() = default;

Tensor PipelineExecutor::step(const Tensor& input, const Tensor& target) {
  State& st = *state_;
  st.inputs = split_batch(st, input, "input");
  st.targets = split_batch(st, target, "target");
  BRAID_CHECK(!st.holds(0) || !st.inputs.empty(), "PipelineExecutor::step: rank ", st.rank,
              " holds stage 0 and needs the input");
  BRAID_CHECK(!st.holds(st.last_stage()) || !st.targets.empty(), "PipelineExecutor::step: rank ", st.rank,
              " holds the last stage and needs the target");
  st.slots.assign(st.stages.size(), std::vector<Slot>(size_t(st.num_microbatches())));
  st.loss = Tensor();
  st.in_flight = st.peak = 0;
  const auto step_start = Clock::now();
  st.stats = PipelineStepStats{};
  for (const Action& a : st.schedule.actions[size_t(st.rank)]) timed_run(st, a);
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

}  // namespace braid::dist
