// What the engine's passes share (autograd_engine.cpp runs backward() and grad(), split_backward.cpp the split
// backward's two halves). Internal to braid_nn.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "braid/nn/autograd.h"

namespace braid::autograd::engine_detail {

// Throws when node was freed by an earlier pass (repeating that pass's error when it failed).
void check_runnable(const Node& node);

// The roots of a pass and the gradients they start with; `op` names the caller in errors.
void collect_roots(const char* op, const std::vector<Tensor>& tensors, const std::vector<Tensor>& grads,
                   std::vector<std::shared_ptr<Node>>& roots, std::vector<Tensor>& root_grads);

// The node an input's gradient flows into, if a graph can reach it; null otherwise.
std::shared_ptr<Node> existing_edge(const Tensor& t);

std::string describe(const Tensor& t);

// Gradients that share memory would change together: each gets its own.
void unalias(std::vector<Tensor>& grads);

// The gradient flowing into `node` as a caller of grad() sees it: a leaf's own gradient hooks run here, since a pass
// that captures a leaf's gradient does not run its AccumulateGrad.
Tensor captured_gradient(Node& node, const Tensor& g);

// Sums g into buffer (buffer may be undefined).
void add_to(Tensor& buffer, const Tensor& g);

// Checks that node's backward returned one gradient per input (or none) of each input's shape.
void check_gradients(const Node& node, const std::vector<Tensor>& grads);

// Runs body as one backward pass on this thread: no graph recorded, queue_callback available, the callbacks run
// after body. When body throws, failed(what) runs before the error propagates.
void run_pass_guarded(const std::function<void()>& body, const std::function<void(const char* what)>& failed);

}  // namespace braid::autograd::engine_detail
