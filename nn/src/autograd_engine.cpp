// The engine: one pass over the graph from its roots. backward() runs every node it reaches and sums into the
// leaves' .grad; grad() runs only the nodes that lead to the chosen inputs and captures the gradients flowing into
// them. A node runs once all the gradients flowing into it are summed, latest-recorded first among those ready. When
// a pass fails after releasing nodes, those nodes keep its error, so a retry reports it again instead of "backward
// through the graph a second time".
#include "autograd_engine.h"

#include <queue>
#include <unordered_map>

#include "braid/core/ops.h"

namespace braid::autograd {

namespace {
thread_local std::vector<std::function<void()>>* g_callbacks = nullptr;  // set while a backward runs
}  // namespace

namespace engine_detail {

void check_runnable(const Node& node) {
  if (!node.released) return;
  if (node.failure)
    BRAID_FAIL(*node.failure,
               " [reported again: the backward pass that raised it had freed part of this graph; "
               "build the graph again]");
  BRAID_FAIL("backward: trying to backward through the graph a second time (", node.name,
             "'s saved tensors were freed); pass retain_graph=true to the first backward");
}

Tensor captured_gradient(Node& node, const Tensor& g) {
  if (auto* acc = dynamic_cast<AccumulateGrad*>(&node)) return run_grad_hooks(autograd_meta(acc->leaf).grad_hooks, g);
  return g;
}

void add_to(Tensor& buffer, const Tensor& g) {
  buffer = buffer.defined() ? ops::binary(ops::BinaryOp::Add, buffer, g) : g;
}

void check_gradients(const Node& node, const std::vector<Tensor>& grads) {
  BRAID_CHECK(grads.empty() || grads.size() == node.next.size(), "autograd: ", node.name, " returned ", grads.size(),
              " gradients for ", node.next.size(), " inputs");
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!node.next[i] || !grads[i].defined()) continue;
    BRAID_CHECK(grads[i].shape() == node.input_shapes[i], "autograd: ", node.name, " returned a gradient of ",
                "shape ", shape_str(grads[i].shape()), " for input ", i, " of shape ",
                shape_str(node.input_shapes[i]));
  }
}

void run_pass_guarded(const std::function<void()>& body, const std::function<void(const char* what)>& failed) {
  BRAID_CHECK(!g_callbacks,
              "backward: a backward pass is already running on this thread (re-entrant backward "
              "from a hook is not supported)");
  std::vector<std::function<void()>> callbacks;
  g_callbacks = &callbacks;
  struct Reset {
    ~Reset() { g_callbacks = nullptr; }
  } reset;
  // Gradients are computed without recording a graph of their own (no double backward).
  NoGradGuard no_grad;
  try {
    body();
    g_callbacks = nullptr;
    for (auto& fn : callbacks) fn();
  } catch (const std::exception& e) {
    failed(e.what());
    throw;
  } catch (...) {
    failed("backward: a hook or backward threw a non-standard exception");
    throw;
  }
}

std::string describe(const Tensor& t) { return shape_str(t.shape()) + " " + std::string(dtype_name(t.dtype())); }

void collect_roots(const char* op, const std::vector<Tensor>& tensors, const std::vector<Tensor>& grads,
                   std::vector<std::shared_ptr<Node>>& roots, std::vector<Tensor>& root_grads) {
  BRAID_CHECK(!tensors.empty(), op, ": no output tensors given");
  BRAID_CHECK(grads.empty() || grads.size() == tensors.size(), op, ": ", grads.size(), " gradients for ",
              tensors.size(), " outputs (give one per output, or none)");
  for (size_t i = 0; i < tensors.size(); ++i) {
    BRAID_CHECK(tensors[i].defined(), op, ": output ", i, " is an undefined tensor");
    root_grads.push_back(root_gradient(tensors[i], i < grads.size() ? grads[i] : Tensor(), op, int64_t(i)));
    roots.push_back(gradient_edge(tensors[i]));
  }
}

// A leaf's accumulator exists only while some graph holds it.
std::shared_ptr<Node> existing_edge(const Tensor& t) {
  AutogradMeta& meta = autograd_meta(t);
  if (meta.grad_fn) return meta.grad_fn;
  std::lock_guard<std::mutex> lock(meta.mutex);
  return meta.grad_accumulator.lock();
}

void unalias(std::vector<Tensor>& grads) {
  for (size_t i = 1; i < grads.size(); ++i) {
    if (!grads[i].defined()) continue;
    for (size_t j = 0; j < i; ++j) {
      if (grads[j].defined() && grads[j].storage().ptr == grads[i].storage().ptr) {
        grads[i] = ops::clone(grads[i]);
        break;
      }
    }
  }
}

}  // namespace engine_detail

namespace {

using namespace engine_detail;

// One node's part in a pass.
struct NodeTask {
  bool visited = false;
  int deps = 0;                  // gradients still to come from nodes that run
  bool needed = true;            // grad(): the node is captured or leads to a captured node
  bool runs = true;              // grad(): a captured node lies below it, so its backward runs
  bool released = false;         // this pass released the node (a failure of the pass is left on it)
  Tensor buffer;                 // the gradients summed so far
  std::vector<size_t> captures;  // grad(): the inputs whose gradient flows into this node
};

struct Pass {
  bool accumulate = true;  // backward(): leaves' .grad and retain_grad; grad(): captures only
  bool retain_graph = false;
  std::unordered_map<Node*, NodeTask> nodes;
  std::vector<Tensor> captured;
};

// Depth-first from the roots, finishing each node after all the nodes below it, so that grad() knows which nodes
// lead to a captured one before counting the edges that will carry gradients.
void discover(Pass& pass, const std::vector<std::shared_ptr<Node>>& roots) {
  struct Frame {
    Node* node;
    size_t child;
  };
  std::vector<Frame> stack;
  for (const auto& root : roots) {
    NodeTask& rt = pass.nodes[root.get()];
    if (rt.visited) continue;
    rt.visited = true;
    stack.push_back({root.get(), 0});
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.child < f.node->next.size()) {
        Node* c = f.node->next[f.child++].get();
        if (!c) continue;
        NodeTask& ct = pass.nodes[c];
        if (!ct.visited) {
          ct.visited = true;
          stack.push_back({c, 0});
        }
        continue;
      }
      Node* n = f.node;
      stack.pop_back();
      NodeTask& t = pass.nodes[n];
      bool leads_to_capture = false;
      for (const auto& e : n->next) {
        if (!e) continue;
        NodeTask& ct = pass.nodes[e.get()];
        if (!pass.accumulate && !ct.needed) continue;
        ++ct.deps;
        leads_to_capture = true;
      }
      if (!pass.accumulate) {
        t.runs = leads_to_capture;
        t.needed = t.runs || !t.captures.empty();
      }
    }
  }
}

// backward() wants every input's gradient; grad() only those that lead to a captured input.
EdgeMask wanted_edges(Pass& pass, const Node& node) {
  if (pass.accumulate) return {};
  std::vector<bool> wanted(node.next.size());
  for (size_t i = 0; i < node.next.size(); ++i) wanted[i] = node.next[i] && pass.nodes[node.next[i].get()].needed;
  return EdgeMask(std::move(wanted));
}

// Runs the hooks on the gradient flowing into `node`, captures it, and runs the node's backward when needed.
std::vector<Tensor> evaluate(Pass& pass, Node& node, NodeTask& task, Tensor g) {
  g = run_grad_hooks(node.pre_hooks, std::move(g));
  if (pass.accumulate) g = run_grad_hooks(node.retain_grad_hooks, std::move(g));
  if (!task.captures.empty()) {
    Tensor c = captured_gradient(node, g);
    for (size_t i : task.captures) pass.captured[i] = c;
  }
  if (!task.runs) return {};
  check_runnable(node);
  node.saved.check(node.name);
  std::vector<Tensor> grads = node.apply(std::move(g), wanted_edges(pass, node));
  if (!pass.retain_graph) {
    node.release();
    task.released = node.released;
  }
  check_gradients(node, grads);
  return grads;
}

void execute(Pass& pass, const std::vector<std::shared_ptr<Node>>& roots, const std::vector<Tensor>& root_grads) {
  auto later_first = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence_nr < b->sequence_nr;
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(later_first)> ready(
      later_first);
  for (size_t i = 0; i < roots.size(); ++i) add_to(pass.nodes[roots[i].get()].buffer, root_grads[i]);
  for (const auto& root : roots) {
    NodeTask& t = pass.nodes[root.get()];
    // A root below another root waits for its gradients; pushing each root once.
    if (t.needed && t.deps == 0) {
      t.deps = -1;
      ready.push(root);
    }
  }
  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    NodeTask& task = pass.nodes[node.get()];
    Tensor g = std::move(task.buffer);
    std::vector<Tensor> grads;
    if (g.defined()) grads = evaluate(pass, *node, task, std::move(g));
    for (size_t i = 0; i < node->next.size(); ++i) {
      const auto& child = node->next[i];
      if (!child) continue;
      NodeTask& ct = pass.nodes[child.get()];
      if (!pass.accumulate && !ct.needed) continue;
      if (i < grads.size() && grads[i].defined()) add_to(ct.buffer, grads[i]);
      if (--ct.deps == 0) ready.push(child);
    }
  }
}

// The nodes the pass released keep its error, so that a retry reports it again.
void remember_failure(Pass& pass, const char* what) {
  auto failure = std::make_shared<const std::string>(what);
  for (const auto& [node, task] : pass.nodes)
    if (task.released) node->failure = failure;
}

// Runs one pass and then the callbacks queued during it. On failure, the nodes the pass released remember the error.
void run_pass(Pass& pass, const std::vector<std::shared_ptr<Node>>& roots, const std::vector<Tensor>& root_grads) {
  run_pass_guarded(
      [&] {
        discover(pass, roots);
        execute(pass, roots, root_grads);
      },
      [&](const char* what) { remember_failure(pass, what); });
}

}  // namespace

void queue_callback(std::function<void()> fn) {
  BRAID_CHECK(g_callbacks, "queue_callback: no backward pass is running on this thread");
  g_callbacks->push_back(std::move(fn));
}

void backward(const std::vector<Tensor>& tensors, const std::vector<Tensor>& grad_tensors, bool retain_graph) {
  std::vector<std::shared_ptr<Node>> roots;
  std::vector<Tensor> root_grads;
  collect_roots("backward", tensors, grad_tensors, roots, root_grads);
  Pass pass;
  pass.retain_graph = retain_graph;
  run_pass(pass, roots, root_grads);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph, bool allow_unused) {
  std::vector<std::shared_ptr<Node>> roots;
  std::vector<Tensor> root_grads;
  collect_roots("autograd::grad", outputs, grad_outputs, roots, root_grads);
  BRAID_CHECK(!inputs.empty(), "autograd::grad: no input tensors given");
  Pass pass;
  pass.accumulate = false;
  pass.retain_graph = retain_graph;
  pass.captured.resize(inputs.size());
  std::vector<std::shared_ptr<Node>> input_nodes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    BRAID_CHECK(x.defined(), "autograd::grad: input ", i, " is an undefined tensor");
    BRAID_CHECK(x.requires_grad(), "autograd::grad: input ", i, " (", describe(x),
                ") does not require grad, so no gradient flows to it");
    if (auto n = existing_edge(x)) {
      pass.nodes[n.get()].captures.push_back(i);
      input_nodes.push_back(std::move(n));
    }
  }
  run_pass(pass, roots, root_grads);
  for (size_t i = 0; i < inputs.size(); ++i) {
    BRAID_CHECK(allow_unused || pass.captured[i].defined(), "autograd::grad: input ", i, " (", describe(inputs[i]),
                ") is not reachable from the outputs (they were not computed from it); pass allow_unused=true to "
                "get an undefined gradient for it");
  }
  unalias(pass.captured);
  return std::move(pass.captured);
}

}  // namespace braid::autograd
