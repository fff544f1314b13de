// Recording the graph: nodes, grad mode, the saved tensors' versions, and the hooks core forwards to the graph. The
// engine that runs it is autograd_engine.cpp.
#include "braid/nn/autograd.h"

#include <atomic>

#include "braid/core/ops.h"

namespace braid::autograd {

namespace {
std::atomic<uint64_t> g_next_sequence{0};
thread_local bool g_grad_enabled = true;

// A non-leaf's hooks live on its grad_fn, which the graph keeps alive after the tensor itself is gone.
HookHandle register_node_hook(const Tensor& non_leaf, GradHook hook) {
  std::shared_ptr<Node> node = non_leaf.grad_fn();
  uint64_t id = node->pre_hooks.add(std::move(hook));
  return HookHandle([weak = std::weak_ptr<Node>(node), id] {
    if (auto n = weak.lock()) n->pre_hooks.remove(id);
  });
}

HookHandle retain_node_grad(const Tensor& non_leaf) {
  AutogradMeta& meta = autograd_meta(non_leaf);
  if (meta.retains_grad) return {};
  meta.retains_grad = true;
  std::shared_ptr<Node> node = non_leaf.grad_fn();
  std::weak_ptr<AutogradMeta> weak_meta = non_leaf.impl()->autograd;
  uint64_t id = node->retain_grad_hooks.add([weak_meta](const Tensor& g) {
    if (auto m = weak_meta.lock()) {
      std::lock_guard<std::mutex> lock(m->mutex);
      // Out of place: the incoming gradient goes on to the node's backward, and a .grad handed out earlier keeps
      // its values.
      m->grad = m->grad.defined() ? ops::binary(ops::BinaryOp::Add, m->grad, g) : ops::clone(g);
    }
    return Tensor();
  });
  return HookHandle([weak_node = std::weak_ptr<Node>(node), weak_meta, id] {
    if (auto n = weak_node.lock()) n->retain_grad_hooks.remove(id);
    if (auto m = weak_meta.lock()) m->retains_grad = false;
  });
}

void backward_from(const Tensor& root, const Tensor& gradient, bool retain_graph) {
  backward({root}, {gradient}, retain_graph);
}

const Engine kEngine{&backward_from, &register_node_hook, &retain_node_grad};

// Registered once, when this file is linked in; record() is here too, so no graph can exist without it.
[[maybe_unused]] const bool g_engine_registered = (set_engine(&kEngine), true);
}  // namespace

void SavedVersions::add(const Tensor& t) {
  if (!t.defined()) return;
  Entry e{t.storage().version, t.version()};
  if (count_ < inline_.size())
    inline_[count_] = std::move(e);
  else
    overflow_.push_back(std::move(e));
  ++count_;
}

void SavedVersions::check(const std::string& op) const {
  for (size_t i = 0; i < count_; ++i) {
    const Entry& e = at(i);
    uint64_t now = e.counter->load(std::memory_order_acquire);
    BRAID_CHECK(now == e.version, "backward: a tensor saved for ", op, " was modified in place (version ", now,
                ", saved at ", e.version, "; saved tensor ", i + 1, " of ", count_,
                "); modify a clone instead, or do the in-place op after backward");
  }
}

void SavedVersions::clear() {
  for (auto& e : inline_) e = Entry{};
  overflow_.clear();
  count_ = 0;
}

Node::Node(std::string n) : name(std::move(n)), sequence_nr(g_next_sequence++) {}

void Node::release() {
  released = true;
  saved.clear();
}

std::vector<Tensor> FunctionNode::apply(Tensor grad_output, const EdgeMask& wanted) {
  BRAID_CHECK(!released, "backward: trying to backward through the graph a second time (", name,
              "'s saved tensors were freed); pass retain_graph=true to the first backward");
  return masked_backward ? masked_backward(grad_output, wanted) : backward(grad_output);
}

void FunctionNode::release() {
  Node::release();
  backward = nullptr;
  masked_backward = nullptr;
}

AccumulateGrad::AccumulateGrad(Tensor t) : Node("AccumulateGrad"), leaf(std::move(t)) {}

std::vector<Tensor> AccumulateGrad::apply(Tensor g, const EdgeMask&) {
  accumulate_grad(leaf, std::move(g));
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

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  auto& meta = autograd_meta(t);
  if (meta.grad_fn) return meta.grad_fn;
  // Two threads may record ops on one leaf at once: they must share its accumulator.
  std::lock_guard<std::mutex> lock(meta.mutex);
  if (auto acc = meta.grad_accumulator.lock()) return acc;
  auto acc = std::make_shared<AccumulateGrad>(t);
  meta.grad_accumulator = acc;
  return acc;
}

namespace {

template <typename Fn>
Tensor record_node(const char* name, const Tensor& output, const std::vector<Tensor>& inputs, Fn fn,
                   std::initializer_list<Tensor> saved) {
  auto node = std::make_shared<FunctionNode>(name, std::move(fn));
  node->next.reserve(inputs.size());
  node->input_shapes.reserve(inputs.size());
  for (const auto& t : inputs) {
    node->next.push_back(gradient_edge(t));
    node->input_shapes.push_back(t.defined() ? t.shape() : Shape{});
  }
  for (const auto& t : saved) node->saved.add(t);
  // The output may be a view sharing its impl with nothing else: give it its own history.
  autograd_meta(output).grad_fn = std::move(node);
  return output;
}

}  // namespace

Tensor record(const char* name, const Tensor& output, const std::vector<Tensor>& inputs, BackwardFn fn,
              std::initializer_list<Tensor> saved) {
  return record_node(name, output, inputs, std::move(fn), saved);
}

Tensor record(const char* name, const Tensor& output, const std::vector<Tensor>& inputs, MaskedBackwardFn fn,
              std::initializer_list<Tensor> saved) {
  return record_node(name, output, inputs, std::move(fn), saved);
}

}  // namespace braid::autograd
