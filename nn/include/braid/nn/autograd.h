// The autograd graph: define-by-run reverse mode. A differentiable op computes its result with core/ ops and, when
// grad mode is on and an input requires grad, records a Node holding what its backward needs. Tensor::backward
// runs the engine here: nodes execute in reverse creation order once all their incoming gradients are summed, so
// each leaf's gradient is final exactly once per pass, when its post-accumulate-grad hooks fire.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "braid/core/tensor.h"

namespace braid::autograd {

struct Node {
  explicit Node(std::string name);
  virtual ~Node() = default;
  // Gradients for each input (one per entry of `next`; undefined where no gradient flows).
  virtual std::vector<Tensor> apply(Tensor grad_output) = 0;
  // Frees what the backward saved; a second backward through a released node is an error.
  virtual void release() { released = true; }

  std::string name;
  uint64_t sequence_nr;
  std::vector<std::shared_ptr<Node>> next;  // the node of each input; null where the input needs no gradient
  std::vector<Shape> input_shapes;          // to check what each backward returns
  bool released = false;
};

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

// A node whose backward is a function (most ops).
struct FunctionNode : Node {
  FunctionNode(std::string name, BackwardFn fn) : Node(std::move(name)), backward(std::move(fn)) {}
  std::vector<Tensor> apply(Tensor grad_output) override;
  void release() override;
  BackwardFn backward;
};

// The node at a leaf that requires grad: sums the incoming gradient into .grad and fires the leaf's hooks.
struct AccumulateGrad : Node {
  explicit AccumulateGrad(Tensor leaf);
  std::vector<Tensor> apply(Tensor grad_output) override;
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
// Attaches a FunctionNode to `output` whose inputs are `inputs`; returns `output`.
Tensor record(const char* name, const Tensor& output, const std::vector<Tensor>& inputs, BackwardFn fn);

// Queues fn to run once the backward pass now running on this thread has finished (DistributedDataParallel waits
// for its last all-reduces there, so the optimizer sees averaged gradients). Outside a backward pass it is an error.
void queue_callback(std::function<void()> fn);

// Runs the engine from `root` with the gradient `grad` (what Tensor::backward calls).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace braid::autograd

namespace braid {
using autograd::NoGradGuard;
}
