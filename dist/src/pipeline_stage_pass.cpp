#include "pipeline_stage_pass.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <utility>

#include "braid/core/creation.h"
#include "braid/core/error.h"
#include "braid/core/ops.h"
#include "braid/dist/init.h"
#include "braid/nn/autograd.h"

namespace braid::dist::detail {
namespace {

constexpr int64_t kMaxDims = 8;
// Header: status, failing stage, failing rank, dtype, device kind, number of dims, then the dims.
constexpr int64_t kHeaderSize = 6 + kMaxDims;
// The failure's message crosses as int64 words (the group carries no bytes), cut to this many characters.
constexpr int64_t kMessageWords = 128;
constexpr int64_t kNoFailure = std::numeric_limits<int64_t>::max();

struct Failure {
  int stage = 0;
  int rank = 0;
  std::string message;  // empty on the ranks that only forwarded it
};

struct Received {
  Tensor tensor;
  Device device;  // where the sending stage computed
};

// Puts a stage in eval mode for the check pass and restores every module's own flag after: shapes do not depend on
// the mode, and a dropout layer in training mode would draw random numbers, so the first real step's masks would
// differ from a run without the check.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(const nn::Sequential& stage) {
    for (auto& [name, module] : stage->named_modules()) saved_.emplace_back(module, module->is_training());
    stage->eval();
  }
  // Parents come before their children in named_modules(), so each child's own flag is set after its parent's.
  ~EvalModeGuard() {
    for (auto& [module, training] : saved_) module->train(training);
  }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  std::vector<std::pair<std::shared_ptr<nn::Module>, bool>> saved_;
};

class CheckPass {
 public:
  explicit CheckPass(const StagePass& c) : c_(c), rank_(c.group.rank()) {
    result_.boundary.resize(size_t(c.schedule.num_stages()));
  }

  StagePassResult run() {
    for (size_t local = 0; local < c_.stages.size(); ++local) run_stage(int(local) * c_.schedule.num_ranks + rank_);
    agree();
    return std::move(result_);
  }

 private:
  int last_stage() const { return c_.schedule.num_stages() - 1; }
  bool crosses(int from, int to) const {
    return to >= 0 && to <= last_stage() && c_.schedule.rank_of_stage(from) != c_.schedule.rank_of_stage(to);
  }

  void run_stage(int stage) {
    if (!failure_ && c_.early) failure_ = Failure{c_.early->stage, rank_, c_.early->message};
    std::optional<Received> in = input_of(stage);
    Tensor out;
    Device device = in ? in->device : Device::cpu();
    const auto params = c_.stages[size_t(stage / c_.schedule.num_ranks)]->parameters();
    if (!params.empty()) device = params.front().device();
    result_.stage_device.push_back(device);
    if (!failure_) out = forward(stage, ops::to_device(in->tensor, device));
    if (crosses(stage, stage + 1)) send(stage, out, device);
    previous_ = out;
    if (stage == last_stage()) result_.output = out;
  }

  // The stage's input: the micro-batch, the previous stage's output on this rank, or what the previous rank sent
  // (nothing when a failure came instead).
  std::optional<Received> input_of(int stage) {
    if (stage == 0) {
      if (failure_) return std::nullopt;
      return Received{c_.input, c_.input.device()};
    }
    if (!crosses(stage, stage - 1)) {
      if (failure_) return std::nullopt;
      return Received{previous_, previous_.device()};
    }
    return receive(stage);
  }

  Tensor forward(int stage, const Tensor& input) {
    try {
      autograd::NoGradGuard no_grad;
      const nn::Sequential& module = c_.stages[size_t(stage / c_.schedule.num_ranks)];
      std::optional<EvalModeGuard> eval_mode;
      if (c_.kind == PassKind::FirstStepCheck) eval_mode.emplace(module);
      Tensor out = module->forward(input);
      if (stage == last_stage() && c_.loss_fn) {
        Tensor loss = c_.loss_fn(out, c_.target);
        BRAID_CHECK(loss.numel() == 1, "the loss must have one element, got ", shape_str(loss.shape()));
      }
      return out;
    } catch (const std::exception& e) {
      failure_ = Failure{stage, rank_, e.what()};
      return Tensor();
    }
  }

  void send(int stage, const Tensor& out, Device device) {
    const int dst = c_.schedule.rank_of_stage(stage + 1);
    std::vector<int64_t> header(size_t(kHeaderSize), 0);
    if (!failure_ && out.dim() > kMaxDims)
      failure_ = Failure{
          stage, rank_,
          "activations of more than " + std::to_string(kMaxDims) + " dimensions, got " + shape_str(out.shape())};
    if (failure_) {
      header[0] = 1;
      header[1] = failure_->stage;
      header[2] = failure_->rank;
    } else {
      header[3] = int64_t(out.dtype());
      header[4] = device.is_cuda() ? 1 : 0;
      header[5] = out.dim();
      std::copy(out.shape().begin(), out.shape().end(), header.begin() + 6);
    }
    c_.group.send(from_vector(header, {kHeaderSize}), dst, c_.tag)->wait();
    if (failure_) return;
    result_.boundary[size_t(stage)] = BoundaryMeta{out.shape(), out.dtype()};
    c_.group.send(ops::contiguous(ops::to_device(out, Device::cpu())), dst, c_.tag)->wait();
  }

  std::optional<Received> receive(int stage) {
    const int src = c_.schedule.rank_of_stage(stage - 1);
    Tensor header = zeros({kHeaderSize}, TensorOptions(DType::Int64, Device::cpu()));
    c_.group.recv(header, src, c_.tag)->wait();
    const int64_t* h = header.data<int64_t>();
    if (h[0] != 0) {
      if (!failure_) failure_ = Failure{int(h[1]), int(h[2]), ""};
      return std::nullopt;
    }
    BRAID_CHECK(h[3] >= 0 && h[3] <= int64_t(DType::Int64) && h[5] >= 0 && h[5] <= kMaxDims, "PipelineExecutor: stage ",
                stage, " received a malformed activation header from rank ", src);
    BoundaryMeta meta{Shape(h + 6, h + 6 + h[5]), DType(h[3])};
    const Device sender = h[4] ? local_device() : Device::cpu();
    Tensor in = empty(meta.shape, TensorOptions(meta.dtype, Device::cpu()));
    c_.group.recv(in, src, c_.tag)->wait();
    result_.boundary[size_t(stage - 1)] = meta;
    if (failure_) return std::nullopt;
    return Received{in, sender};
  }

  // One all_reduce agrees on the first failure (by stage, then rank) and on whether every stage is on CUDA; the
  // failing rank then broadcasts its message.
  void agree() {
    const int64_t p = c_.schedule.num_ranks;
    const bool local_cuda = std::all_of(result_.stage_device.begin(), result_.stage_device.end(),
                                        [](const Device& d) { return d.is_cuda(); });
    Tensor agreed = from_vector(
        std::vector<int64_t>{failure_ ? failure_->stage * p + failure_->rank : kNoFailure, local_cuda ? 1 : 0}, {2});
    c_.group.all_reduce(agreed, ReduceOp::Min)->wait();
    const int64_t code = agreed.data<int64_t>()[0];
    result_.all_cuda = agreed.data<int64_t>()[1] == 1;
    if (code == kNoFailure) return;
    const int stage = int(code / p), rank = int(code % p);
    std::vector<int64_t> words(size_t(kMessageWords), 0);
    if (rank == rank_ && failure_)
      std::memcpy(words.data(), failure_->message.data(),
                  std::min(failure_->message.size(), size_t(kMessageWords * 8 - 1)));
    Tensor message = from_vector(words, {kMessageWords});
    c_.group.broadcast(message, rank)->wait();
    std::string text(reinterpret_cast<const char*>(message.data<int64_t>()), size_t(kMessageWords * 8));
    text.resize(std::strlen(text.c_str()));
    fail(stage, rank, text);
  }

  [[noreturn]] void fail(int stage, int rank, const std::string& text) const {
    switch (c_.kind) {
      case PassKind::FirstStepCheck:
        BRAID_FAIL("PipelineExecutor: stage ", stage, " failed on rank ", rank, " at the first step: ", text);
      case PassKind::Forward:
        BRAID_FAIL("Pipeline::forward: stage ", stage, " of ", c_.schedule.num_stages(), " on rank ", rank,
                   " failed: ", text);
    }
    BRAID_FAIL("pipeline stage pass: unknown kind");
  }

  const StagePass& c_;
  int rank_;
  StagePassResult result_;
  std::optional<Failure> failure_;
  Tensor previous_;  // the output of this rank's previous stage (one rank only)
};

}  // namespace

StagePassResult check_first_step(const StagePass& check) { return CheckPass(check).run(); }

Tensor forward_through_stages(const std::vector<nn::Sequential>& stages, ProcessGroup& group, const Schedule& schedule,
                              const Tensor& input) {
  static const PipelineLossFn no_loss;
  std::optional<EarlyFailure> early;
  if (schedule.rank_of_stage(0) == group.rank() && !input.defined())
    early = EarlyFailure{0, "Pipeline::forward: stage 0 needs the input, got an undefined tensor"};
  const StagePass pass{stages, group, schedule, no_loss, input, Tensor(), early, 0, PassKind::Forward};
  return CheckPass(pass).run().output;
}

}  // namespace braid::dist::detail
