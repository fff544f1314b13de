// The autograd graph: define-by-run reverse mode. A differentiable op computes its result with core/ ops and, when
// grad mode is on and an input requires grad, records a Node holding what its backward needs and the versions of
// the tensors it saved. The engine runs nodes in reverse creation order once all their incoming gradients are
// summed, so each leaf's gradient is final exactly once per pass, when its post-accumulate-grad hooks fire.
// backward() sums gradients into the leaves' .grad; grad() returns the gradients of chosen tensors (leaf or not)
// and runs only the part of the graph that leads to them, touching no .grad.
#pragma once

#include <array>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "braid/core/tensor.h"

namespace braid::autograd {

// The version each tensor a backward saved had when it was saved: a backward whose saved tensor was written in
// place since would compute with the new values, so it throws instead (PyTorch's rule). A few entries live inline,
// so recording a node allocates nothing for them.
class SavedVersions {
 public:
  void add(const Tensor& t);  // an undefined t is skipped
  // Throws braid::Error naming `op` when a saved tensor was modified in place.
  void check(const std::string& op) const;
  void clear();
  size_t size() const { return count_; }

 private:
  struct Entry {
    std::shared_ptr<VersionCounter> counter;
    uint64_t version = 0;
  };
  const Entry& at(size_t i) const { return i < inline_.size() ? inline_[i] : overflow_[i - inline_.size()]; }
  std::array<Entry, 3> inline_;
  std::vector<Entry> overflow_;
  size_t count_ = 0;
};

// Which of a node's inputs a pass wants gradients for (PyTorch's needs_input_grad): a backward may leave the others
// undefined and skip their work, so that a split backward does the input GEMM in one pass and the weight GEMM in the
// other. Default-constructed, it wants every input.
class EdgeMask {
 public:
  EdgeMask() = default;
  explicit EdgeMask(std::vector<bool> wanted) : wanted_(std::move(wanted)), all_(false) {}
  bool operator[](size_t input) const { return all_ || (input < wanted_.size() && wanted_[input]); }

 private:
  std::vector<bool> wanted_;
  bool all_ = true;
};

struct Node {
  explicit Node(std::string name);
  virtual ~Node() = default;
  // Gradients for each input (one per entry of `next`; undefined where no gradient flows). Those `wanted` excludes
  // are not used: a node may skip them or compute them anyway.
  virtual std::vector<Tensor> apply(Tensor grad_output, const EdgeMask& wanted) = 0;
  // Frees what the backward saved; a second backward through a released node is an error.
  virtual void release();

  std::string name;
  uint64_t sequence_nr;
  std::vector<std::shared_ptr<Node>> next;  // the node of each input; null where the input needs no gradient
  std::vector<Shape> input_shapes;          // to check what each backward returns
  SavedVersions saved;                      // the tensors the backward reads, checked before it runs
  bool released = false;
  // The error of the backward pass that failed after releasing this node: a retry reports it again.
  std::shared_ptr<const std::string> failure;
  // register_hook on the node's output, then retain_grad on it (those only in backward passes, not in grad()).
  HookList<GradHook> pre_hooks;
  HookList<GradHook> retain_grad_hooks;
};

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;
// A backward that computes only the inputs' gradients the pass wants (for ops whose gradients are expensive).
using MaskedBackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output, const EdgeMask& wanted)>;

// A node whose backward is a function (most ops).
// One of the two functions is set: most ops ignore the mask, and wrapping theirs in a masked one would cost every
// recorded op a second call and an allocation.
struct FunctionNode : Node {
  FunctionNode(std::string name, BackwardFn fn) : Node(std::move(name)), backward(std::move(fn)) {}
  FunctionNode(std::string name, MaskedBackwardFn fn) : Node(std::move(name)), masked_backward(std::move(fn)) {}
  std::vector<Tensor> apply(Tensor grad_output, const EdgeMask& wanted) override;
  void release() override;
  BackwardFn backward;
  MaskedBackwardFn masked_backward;
};

// The node at a leaf that requires grad: sums the incoming gradient into .grad and fires the leaf's hooks.
struct AccumulateGrad : Node {
  explicit AccumulateGrad(Tensor leaf);
  std::vector<Tensor> apply(Tensor grad_output, const EdgeMask& wanted) override;
  void release() override {}
  Tensor leaf;
};

// Whether ops record the graph on this thread.
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// Records nothing while alive (evaluation, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and one of the inputs requires grad.
bool any_requires_grad(std::initializer_list<Tensor> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);
// Attaches a FunctionNode to `output` whose inputs are `inputs`; returns `output`. `saved` lists exactly the
// tensors fn reads (inputs or the output; undefined entries are skipped): their versions are checked before fn runs,
// so an in-place write to one of them between forward and backward is an error instead of a wrong gradient.
Tensor record(const char* name, const Tensor& output, const std::vector<Tensor>& inputs, BackwardFn fn,
              std::initializer_list<Tensor> saved = {});
// The same for a backward that honours the pass's EdgeMask.
Tensor record(const char* name, const Tensor& output, const std::vector<Tensor>& inputs, MaskedBackwardFn fn,
              std::initializer_list<Tensor> saved = {});

// The node a gradient for t flows into: t's grad_fn, or for a leaf that requires grad its AccumulateGrad (made on
// first use); null when t needs no gradient.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

// Backward from several roots in one pass: each leaf's gradient is final once and its hooks fire once. An undefined
// (or missing) grad_tensors entry is implied as ones for a one-element root.
void backward(const std::vector<Tensor>& tensors, const std::vector<Tensor>& grad_tensors = {},
              bool retain_graph = false);

// The gradients of the sum of outputs (weighted by grad_outputs, as in backward) with respect to each of `inputs`,
// leaf or not, as torch.autograd.grad: no .grad is written and no post-accumulate-grad hook fires (register_hook
// hooks on the inputs and on the way do run). Only the nodes between the outputs and the inputs run; with
// retain_graph the graph stays usable (a pipeline takes the inputs' gradients first, the weights' later). An input
// the outputs do not depend on is an error unless allow_unused, which gives an undefined gradient for it.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool allow_unused = false);

// The weight half of a split backward, made by backward_input and run once by run() (or backward_weight): it applies
// only the nodes whose gradients lead to the weights, for those edges only, sums into the weights' .grad (their
// post-accumulate-grad hooks fire) and frees what is left of the graph. Copies share one state: it runs once.
class DeferredWeightGrad {
 public:
  struct State;  // what backward_input kept (split_backward.cpp)
  DeferredWeightGrad() = default;
  explicit DeferredWeightGrad(std::shared_ptr<State> state) : state_(std::move(state)) {}
  void run();
  // True between backward_input and run().
  bool pending() const;

 private:
  std::shared_ptr<State> state_;
};

struct SplitBackward {
  std::vector<Tensor> input_grads;  // one per input, as autograd::grad gives them
  DeferredWeightGrad weight;
};

// Backward split in two, as the zero-bubble schedules need (torch.distributed.pipelining's stage_backward_input and
// stage_backward_weight): runs only the part of the graph from `roots` (weighted by grad_roots, as in backward) to
// `inputs` and returns their gradients, touching no .grad; each node on the way that also leads to one of `weights`
// (leaves that require grad) keeps its incoming gradient, and nothing else of the weights' gradients is computed
// until the returned DeferredWeightGrad runs. Hooks on the way fire once, in this call; the input path's nodes are
// freed here, the rest by the deferred run. `inputs` may be empty (then the deferred run is a backward to the
// weights); a tensor cannot be both an input and a weight.
SplitBackward backward_input(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                             const std::vector<Tensor>& inputs, const std::vector<Tensor>& weights);
// deferred.run(): errors when it already ran or came from no backward_input.
void backward_weight(DeferredWeightGrad& deferred);

// Queues fn to run once the backward pass now running on this thread has finished (DistributedDataParallel waits
// for its last all-reduces there, so the optimizer sees averaged gradients). Outside a backward pass it is an error.
void queue_callback(std::function<void()> fn);

}  // namespace braid::autograd

namespace braid {
using autograd::NoGradGuard;
}
