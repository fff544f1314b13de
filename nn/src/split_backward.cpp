// Backward split in two, for zero-bubble pipeline schedules. backward_input runs the nodes between the roots and the
// inputs and keeps the incoming gradient of each node that also leads to a weight; the deferred weight half applies
// just those nodes, for their edges towards the weights, and then the nodes below them that lead only to weights. So
// the weight half repeats none of the input half's work, and an op whose backward honours its EdgeMask (matmul,
// linear, layer_norm) does its input GEMM in the first half and its weight GEMM in the second.
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd_engine.h"

namespace braid::autograd {

namespace {

using namespace engine_detail;

// What a node's gradient flows on to.
constexpr uint8_t kInput = 1, kWeight = 2;

using NodePtr = std::shared_ptr<Node>;

struct LaterFirst {
  bool operator()(const NodePtr& a, const NodePtr& b) const { return a->sequence_nr < b->sequence_nr; }
};
using ReadyQueue = std::priority_queue<NodePtr, std::vector<NodePtr>, LaterFirst>;

// Post-order from the roots: a node's reach is its own mark (an input's node, a weight's node) and its children's.
std::unordered_map<Node*, uint8_t> find_reach(const std::vector<NodePtr>& roots,
                                              const std::unordered_map<Node*, uint8_t>& marks) {
  std::unordered_map<Node*, uint8_t> reach;
  std::unordered_set<Node*> visited;
  struct Frame {
    Node* node;
    size_t child;
  };
  std::vector<Frame> stack;
  for (const auto& root : roots) {
    if (!visited.insert(root.get()).second) continue;
    stack.push_back({root.get(), 0});
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.child < f.node->next.size()) {
        Node* c = f.node->next[f.child++].get();
        if (c && visited.insert(c).second) stack.push_back({c, 0});
        continue;
      }
      Node* n = f.node;
      stack.pop_back();
      auto mark = marks.find(n);
      uint8_t r = mark == marks.end() ? 0 : mark->second;
      for (const auto& e : n->next)
        if (e) r |= reach[e.get()];  // a graph has no cycles, so every child has finished
      reach[n] = r;
    }
  }
  return reach;
}

EdgeMask edges_into(const Node& node, const std::function<bool(Node*)>& wanted) {
  std::vector<bool> mask(node.next.size());
  for (size_t i = 0; i < node.next.size(); ++i) mask[i] = node.next[i] && wanted(node.next[i].get());
  return EdgeMask(std::move(mask));
}

void remember_failure(const std::vector<Node*>& released, const char* what) {
  auto failure = std::make_shared<const std::string>(what);
  for (Node* n : released) n->failure = failure;
}

}  // namespace

struct DeferredWeightGrad::State {
  struct Seed {
    NodePtr node;
    Tensor grad;
    bool hooks_ran;  // a node of the input half ran its hooks there; a root that leads only to weights did not
  };
  std::vector<Seed> seeds;
  // The nodes whose gradients lead to weights and not to inputs. Only nodes the seeds reach are looked up, and the
  // seeds keep those alive, so no address here can belong to a node made since.
  std::unordered_set<Node*> weight_only;
  bool ran = false;
};

namespace {

using State = DeferredWeightGrad::State;

// The input half: the nodes that lead to an input, as grad() runs them, each keeping its gradient for the weight
// half when one of its edges leads only to weights (such a node stays alive and unreleased until then).
class InputPass {
 public:
  InputPass(std::unordered_map<Node*, uint8_t> reach, std::unordered_map<Node*, std::vector<size_t>> captures,
            size_t num_inputs, State& state)
      : reach_(std::move(reach)), captures_(std::move(captures)), captured_(num_inputs), state_(state) {
    for (const auto& [n, r] : reach_)
      if (r == kWeight) state_.weight_only.insert(n);
  }

  void run(const std::vector<NodePtr>& roots, const std::vector<Tensor>& root_grads) {
    count_dependencies();
    std::unordered_map<Node*, size_t> weight_roots;
    for (size_t i = 0; i < roots.size(); ++i) {
      Node* r = roots[i].get();
      if (reach_[r] & kInput) {
        add_to(buffers_[r], root_grads[i]);
      } else if (state_.weight_only.count(r)) {
        auto [it, fresh] = weight_roots.try_emplace(r, state_.seeds.size());
        if (fresh) state_.seeds.push_back({roots[i], Tensor(), false});
        add_to(state_.seeds[it->second].grad, root_grads[i]);
      }
    }
    ReadyQueue ready;
    for (const auto& root : roots) {
      Node* r = root.get();
      if ((reach_[r] & kInput) && deps_[r] == 0) {
        deps_[r] = -1;  // a root listed twice is pushed once
        ready.push(root);
      }
    }
    drain(ready);
  }

  std::vector<Tensor>& captured() { return captured_; }
  const std::vector<Node*>& released() const { return released_; }

 private:
  bool leads_to_input(Node* n) { return reach_[n] & kInput; }

  void count_dependencies() {
    for (const auto& [n, r] : reach_) {
      if (!(r & kInput)) continue;
      for (const auto& e : n->next)
        if (e && leads_to_input(e.get())) ++deps_[e.get()];
    }
  }

  void drain(ReadyQueue& ready) {
    while (!ready.empty()) {
      NodePtr node = ready.top();
      ready.pop();
      Tensor g = std::move(buffers_[node.get()]);
      std::vector<Tensor> grads;
      if (g.defined()) grads = evaluate(node, std::move(g));
      for (size_t i = 0; i < node->next.size(); ++i) {
        Node* child = node->next[i].get();
        if (!child || !leads_to_input(child)) continue;
        if (i < grads.size() && grads[i].defined()) add_to(buffers_[child], grads[i]);
        if (--deps_[child] == 0) ready.push(node->next[i]);
      }
    }
  }

  std::vector<Tensor> evaluate(const NodePtr& node, Tensor g) {
    g = run_grad_hooks(node->pre_hooks, std::move(g));
    if (auto c = captures_.find(node.get()); c != captures_.end()) {
      Tensor value = captured_gradient(*node, g);
      for (size_t i : c->second) captured_[i] = value;
    }
    bool runs = false, keep = false;
    for (const auto& e : node->next) {
      if (!e) continue;
      runs = runs || leads_to_input(e.get());
      keep = keep || state_.weight_only.count(e.get()) > 0;
    }
    if (keep) state_.seeds.push_back({node, g, true});
    if (!runs) return {};
    check_runnable(*node);
    node->saved.check(node->name);
    std::vector<Tensor> grads = node->apply(std::move(g), edges_into(*node, [&](Node* c) { return leads_to_input(c); }));
    if (!keep) {
      node->release();
      released_.push_back(node.get());
    }
    check_gradients(*node, grads);
    return grads;
  }

  std::unordered_map<Node*, uint8_t> reach_;
  std::unordered_map<Node*, std::vector<size_t>> captures_;
  std::vector<Tensor> captured_;
  State& state_;
  std::unordered_map<Node*, int> deps_;
  std::unordered_map<Node*, Tensor> buffers_;
  std::vector<Node*> released_;
};

// The weight half: the kept nodes for their edges into weight-only nodes, then those nodes, summing into the
// weights' .grad through their AccumulateGrad nodes; every node it runs is released.
class WeightPass {
 public:
  explicit WeightPass(State& state) : state_(state) {}

  void run() {
    count_dependencies();
    for (const auto& seed : state_.seeds) {
      Task& t = tasks_[seed.node.get()];
      add_to(t.buffer, seed.grad);
      t.hooks_ran = seed.hooks_ran;
    }
    ReadyQueue ready;
    for (const auto& seed : state_.seeds) {
      Task& t = tasks_[seed.node.get()];
      if (t.deps == 0) {
        t.deps = -1;  // a seed listed twice is pushed once
        ready.push(seed.node);
      }
    }
    while (!ready.empty()) {
      NodePtr node = ready.top();
      ready.pop();
      step(node, ready);
    }
  }

  const std::vector<Node*>& released() const { return released_; }

 private:
  struct Task {
    int deps = 0;
    Tensor buffer;
    bool hooks_ran = false;
  };

  bool weight_only(Node* n) const { return state_.weight_only.count(n) > 0; }

  // Each node the seeds reach through weight-only nodes is expanded once, so each edge is counted once.
  void count_dependencies() {
    std::unordered_set<Node*> expanded;
    std::vector<Node*> stack;
    for (const auto& seed : state_.seeds)
      if (expanded.insert(seed.node.get()).second) stack.push_back(seed.node.get());
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const auto& e : n->next) {
        if (!e || !weight_only(e.get())) continue;
        ++tasks_[e.get()].deps;
        if (expanded.insert(e.get()).second) stack.push_back(e.get());
      }
    }
  }

  void step(const NodePtr& node, ReadyQueue& ready) {
    Task& task = tasks_[node.get()];
    Tensor g = std::move(task.buffer);
    std::vector<Tensor> grads;
    if (g.defined()) {
      if (!task.hooks_ran) g = run_grad_hooks(node->pre_hooks, std::move(g));
      check_runnable(*node);
      node->saved.check(node->name);
      grads = node->apply(std::move(g), edges_into(*node, [&](Node* c) { return weight_only(c); }));
      node->release();
      released_.push_back(node.get());
      check_gradients(*node, grads);
    }
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* child = node->next[i].get();
      if (!child || !weight_only(child)) continue;
      Task& ct = tasks_[child];
      if (i < grads.size() && grads[i].defined()) add_to(ct.buffer, grads[i]);
      if (--ct.deps == 0) ready.push(node->next[i]);
    }
  }

  State& state_;
  std::unordered_map<Node*, Task> tasks_;
  std::vector<Node*> released_;
};

// The nodes the gradients of inputs and weights flow into, checked; an input or weight no graph holds gets none.
void mark_inputs(const std::vector<Tensor>& inputs, std::unordered_map<Node*, uint8_t>& marks,
                 std::unordered_map<Node*, std::vector<size_t>>& captures, std::vector<NodePtr>& held) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    BRAID_CHECK(x.defined(), "backward_input: input ", i, " is an undefined tensor");
    BRAID_CHECK(x.requires_grad(), "backward_input: input ", i, " (", describe(x),
                ") does not require grad, so no gradient flows to it");
    if (NodePtr n = existing_edge(x)) {
      marks[n.get()] |= kInput;
      captures[n.get()].push_back(i);
      held.push_back(std::move(n));
    }
  }
}

void mark_weights(const std::vector<Tensor>& weights, std::unordered_map<Node*, uint8_t>& marks,
                  std::vector<NodePtr>& held) {
  for (size_t i = 0; i < weights.size(); ++i) {
    const Tensor& w = weights[i];
    BRAID_CHECK(w.defined(), "backward_input: weight ", i, " is an undefined tensor");
    BRAID_CHECK(w.requires_grad() && !w.grad_fn(), "backward_input: weight ", i, " (", describe(w),
                ") must be a leaf that requires grad (a parameter): its gradient is summed into its .grad");
    NodePtr n = existing_edge(w);
    if (!n) continue;
    BRAID_CHECK(!(marks[n.get()] & kInput), "backward_input: weight ", i, " (", describe(w),
                ") is also one of the inputs; a tensor is either an input (its gradient returned now) or a weight "
                "(its gradient summed later), not both");
    marks[n.get()] |= kWeight;
    held.push_back(std::move(n));
  }
}

}  // namespace

SplitBackward backward_input(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                             const std::vector<Tensor>& inputs, const std::vector<Tensor>& weights) {
  std::vector<NodePtr> root_nodes, held;
  std::vector<Tensor> root_grads;
  collect_roots("backward_input", roots, grad_roots, root_nodes, root_grads);
  std::unordered_map<Node*, uint8_t> marks;
  std::unordered_map<Node*, std::vector<size_t>> captures;
  mark_inputs(inputs, marks, captures, held);
  mark_weights(weights, marks, held);
  auto reach = find_reach(root_nodes, marks);
  for (size_t i = 0; i < inputs.size(); ++i) {
    NodePtr n = existing_edge(inputs[i]);
    BRAID_CHECK(n && reach.count(n.get()), "backward_input: input ", i, " (", describe(inputs[i]),
                ") is not reachable from the roots (they were not computed from it)");
  }
  auto state = std::make_shared<State>();
  InputPass pass(std::move(reach), std::move(captures), inputs.size(), *state);
  run_pass_guarded([&] { pass.run(root_nodes, root_grads); },
                   [&](const char* what) { remember_failure(pass.released(), what); });
  std::vector<Tensor> grads = std::move(pass.captured());
  unalias(grads);
  return {std::move(grads), DeferredWeightGrad(std::move(state))};
}

bool DeferredWeightGrad::pending() const { return state_ && !state_->ran; }

void DeferredWeightGrad::run() {
  BRAID_CHECK(state_,
              "backward_weight: this DeferredWeightGrad came from no backward_input (call backward_input first: it "
              "returns the weight half to run)");
  BRAID_CHECK(!state_->ran,
              "backward_weight: the weight half already ran (it runs once, and freed its part of the graph)");
  state_->ran = true;
  WeightPass pass(*state_);
  run_pass_guarded([&] { pass.run(); }, [&](const char* what) { remember_failure(pass.released(), what); });
  state_->seeds.clear();
  state_->weight_only.clear();
}

void backward_weight(DeferredWeightGrad& deferred) { deferred.run(); }

}  // namespace braid::autograd
