#include "braid/nn/autograd.h"

#include <atomic>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "braid/core/ops.h"

namespace braid::autograd {

namespace {
std::atomic<uint64_t> g_next_sequence{0};
thread_local bool g_grad_enabled = true;
thread_local std::vector<std::function<void()>>* g_callbacks = nullptr;  // set while a backward runs

std::shared_ptr<Node> edge_for(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  auto& meta = autograd_meta(t);
  if (meta.grad_fn) return meta.grad_fn;
  if (auto acc = meta.grad_accumulator.lock()) return acc;
  auto acc = std::make_shared<AccumulateGrad>(t);
  meta.grad_accumulator = acc;
  return acc;
}

// An incoming gradient can become .grad directly only if nothing else can see its memory.
bool exclusively_owned(const Tensor& g) {
  return g.impl_ptr().use_count() == 1 && g.storage().ptr.use_count() == 1 && g.is_contiguous();
}
}  // namespace

Node::Node(std::string n) : name(std::move(n)), sequence_nr(g_next_sequence++) {
  set_backward_engine(&run_backward);
}

std::vector<Tensor> FunctionNode::apply(Tensor grad_output) {
  BRAID_CHECK(!released, "backward: trying to backward through the graph a second time (", name,
              "'s saved tensors were freed); pass retain_graph=true to the first backward");
  return backward(grad_output);
}

void FunctionNode::release() {
  Node::release();
  backward = nullptr;
}

AccumulateGrad::AccumulateGrad(Tensor t) : Node("AccumulateGrad"), leaf(std::move(t)) {}

std::vector<Tensor> AccumulateGrad::apply(Tensor g) {
  auto& meta = autograd_meta(leaf);
  if (!meta.grad.defined()) meta.grad = exclusively_owned(g) ? g : ops::clone(g);
  else ops::add_(meta.grad, g);
  for (auto& hook : meta.post_accumulate_grad_hooks) hook(leaf);
  return {};
}

bool GradMode::is_enabled() { return g_grad_enabled; }
void GradMode::set_enabled(bool enabled) { g_grad_enabled = enabled; }

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!g_grad_enabled) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const char* name, const Tensor& output, const std::vector<Tensor>& inputs, BackwardFn fn) {
  auto node = std::make_shared<FunctionNode>(name, std::move(fn));
  node->next.reserve(inputs.size());
  node->input_shapes.reserve(inputs.size());
  for (const auto& t : inputs) {
    node->next.push_back(edge_for(t));
    node->input_shapes.push_back(t.defined() ? t.shape() : Shape{});
  }
  // The output may be a view sharing its impl with nothing else: give it its own history.
  autograd_meta(output).grad_fn = std::move(node);
  return output;
}

void queue_callback(std::function<void()> fn) {
  BRAID_CHECK(g_callbacks, "queue_callback: no backward pass is running on this thread");
  g_callbacks->push_back(std::move(fn));
}

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  BRAID_CHECK(!g_callbacks, "backward: a backward pass is already running on this thread (re-entrant backward "
              "from a hook is not supported)");
  std::vector<std::function<void()>> callbacks;
  g_callbacks = &callbacks;
  struct Reset {
    ~Reset() { g_callbacks = nullptr; }
  } reset;
  std::shared_ptr<Node> root_fn = root.grad_fn();
  BRAID_CHECK(root_fn, "backward: the output has no graph");
  // How many edges point at each node: a node runs once all of its gradients are in.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{root_fn.get()};
  std::unordered_set<Node*> seen{root_fn.get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& e : n->next) {
      if (!e) continue;
      ++deps[e.get()];
      if (seen.insert(e.get()).second) stack.push_back(e.get());
    }
  }
  auto later_first = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence_nr < b->sequence_nr;
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(later_first)> ready(
      later_first);
  std::unordered_map<Node*, Tensor> buffers;
  buffers[root_fn.get()] = grad;
  ready.push(root_fn);
  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    Tensor g;
    if (auto it = buffers.find(node.get()); it != buffers.end()) {
      g = std::move(it->second);
      buffers.erase(it);
    }
    std::vector<Tensor> grads;
    if (g.defined()) {
      grads = node->apply(std::move(g));
      if (!retain_graph) node->release();
      BRAID_CHECK(grads.empty() || grads.size() == node->next.size(), "autograd: ", node->name, " returned ",
                  grads.size(), " gradients for ", node->next.size(), " inputs");
    }
    for (size_t i = 0; i < node->next.size(); ++i) {
      const auto& fn = node->next[i];
      if (!fn) continue;
      if (i < grads.size() && grads[i].defined()) {
        BRAID_CHECK(grads[i].shape() == node->input_shapes[i], "autograd: ", node->name, " returned a gradient of ",
                    "shape ", shape_str(grads[i].shape()), " for input ", i, " of shape ",
                    shape_str(node->input_shapes[i]));
        Tensor& b = buffers[fn.get()];
        b = b.defined() ? ops::binary(ops::BinaryOp::Add, b, grads[i]) : grads[i];
      }
      if (--deps[fn.get()] == 0) ready.push(fn);
    }
  }
  g_callbacks = nullptr;
  for (auto& fn : callbacks) fn();
}

}  // namespace braid::autograd
