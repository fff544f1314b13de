#include "braid/core/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "braid/core/creation.h"
#include "braid/core/ops.h"
#include "cpu_allocator.h"
#include "cuda_runtime.h"

namespace braid {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

Storage Storage::allocate(size_t nbytes, Device device, bool huge_pages) {
  if (device.is_cuda()) {
#if BRAID_WITH_CUDA
    return cuda::detail::allocate(nbytes, device);
#else
    BRAID_FAIL("Storage::allocate: device ", device, " is not available in this build (Braid was built without CUDA)");
#endif
  }
  return cpu::detail::allocate(nbytes, huge_pages);
}

Tensor make_tensor(Storage storage, Shape shape, Shape strides, int64_t offset, DType dtype) {
  // Built from the storage rather than assigned it: a default-constructed Storage would allocate a version
  // counter only to drop it.
  // Braced, then moved in: clang before 16 cannot make_shared an aggregate from a parenthesised list.
  return Tensor(std::make_shared<TensorImpl>(
      TensorImpl{std::move(storage), std::move(shape), std::move(strides), offset, dtype, nullptr, nullptr}));
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  BRAID_CHECK(d >= -n && d < n, "Tensor::size: dim ", d, " out of range for shape ", shape_str(shape()));
  return shape()[d < 0 ? d + n : d];
}

bool Tensor::is_contiguous() const {
  const auto& sh = shape();
  const auto& st = strides();
  // No element is addressed, so no stride can be wrong (PyTorch agrees); otherwise the collectives that require a
  // contiguous buffer refuse an empty tensor that contiguous() cannot change.
  if (std::find(sh.begin(), sh.end(), int64_t(0)) != sh.end()) return true;
  int64_t expect = 1;
  for (size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;
    if (st[i] != expect) return false;
    expect *= sh[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  auto* impl = checked();
  return static_cast<char*>(impl->storage.ptr.get()) + impl->offset * int64_t(element_size(impl->dtype));
}

template <class T>
T Tensor::item() const {
  BRAID_CHECK(numel() == 1, "Tensor::item: expected a tensor with one element, got shape ", shape_str(shape()));
  return to_vector<T>()[0];
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = ops::contiguous(ops::to_device(*this, Device::cpu()));
  std::vector<T> out(size_t(c.numel()));
  dispatch_all(c.dtype(), [&](auto tag) {
    using S = typename decltype(tag)::type;
    const S* p = static_cast<const S*>(c.raw_data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(p[i]);
  });
  return out;
}

template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;
template int Tensor::item<int>() const;
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

// ---- autograd slot ----
namespace autograd {

namespace {
std::atomic<const Engine*> g_engine{nullptr};
std::atomic<uint64_t> g_next_hook_id{0};

// A gradient can become .grad as it is only if nothing else can see its memory: its one Storage is the only
// holder of the memory's ownership record (which the version counter shares when storage_owner.h made it).
bool exclusively_owned(const Tensor& g) {
  const Storage& s = g.storage();
  bool counter_shares_record = !s.ptr.owner_before(s.version) && !s.version.owner_before(s.ptr);
  return g.impl_ptr().use_count() == 1 && s.ptr.use_count() == (counter_shares_record ? 2 : 1) && g.is_contiguous();
}
}  // namespace

namespace detail {
std::mutex& hook_list_mutex(const void* list) {
  static std::mutex pool[16];
  return pool[(reinterpret_cast<uintptr_t>(list) >> 4) % 16];
}
uint64_t next_hook_id() { return g_next_hook_id.fetch_add(1, std::memory_order_relaxed); }
}  // namespace detail

void set_engine(const Engine* engine) { g_engine.store(engine, std::memory_order_release); }
const Engine* engine() { return g_engine.load(std::memory_order_acquire); }

Tensor root_gradient(const Tensor& root, const Tensor& given, const char* op, int64_t output) {
  // Named only when a check fails: a backward pass builds no message.
  auto caller = [&] { return output < 0 ? std::string(op) : op + (" (output " + std::to_string(output) + ")"); };
  BRAID_CHECK(root.requires_grad(), caller(),
              ": the tensor does not require grad and has no grad_fn (was it computed under a no-grad guard, or "
              "from tensors that do not require grad?)");
  if (!given.defined()) {
    BRAID_CHECK(root.numel() == 1, caller(),
                ": a gradient can only be implied for a one-element output; this output has shape ",
                shape_str(root.shape()), ", pass the gradient explicitly");
    return ones(root.shape(), TensorOptions(root.dtype(), root.device()));
  }
  BRAID_CHECK(given.shape() == root.shape(), caller(), ": gradient shape ", shape_str(given.shape()),
              " does not match the output shape ", shape_str(root.shape()));
  BRAID_CHECK(given.dtype() == root.dtype() && given.device() == root.device(), caller(), ": gradient is ",
              given.dtype(), " on ", given.device(), ", output is ", root.dtype(), " on ", root.device());
  return given;
}

Tensor run_grad_hooks(const HookList<GradHook>& hooks, Tensor g) {
  auto list = hooks.snapshot();
  if (!list) return g;
  for (const auto& entry : *list) {
    Tensor r = entry.second(g);
    if (!r.defined()) continue;
    BRAID_CHECK(r.shape() == g.shape() && r.dtype() == g.dtype() && r.device() == g.device(),
                "register_hook: a hook returned a ", shape_str(r.shape()), " ", r.dtype(), " gradient on ", r.device(),
                " for a ", shape_str(g.shape()), " ", g.dtype(), " one on ", g.device(),
                "; it must return one of the same shape, dtype and device, or an undefined tensor to keep it");
    g = std::move(r);
  }
  return g;
}

void accumulate_grad(const Tensor& leaf, Tensor g) {
  AutogradMeta& meta = autograd_meta(leaf);
  g = run_grad_hooks(meta.grad_hooks, std::move(g));
  {
    std::lock_guard<std::mutex> lock(meta.mutex);
    if (!meta.grad.defined())
      meta.grad = exclusively_owned(g) ? std::move(g) : ops::clone(g);
    else
      ops::add_(meta.grad, g);
  }
  // Outside the lock: a hook may read .grad, register hooks, or take a while (DistributedDataParallel's copy).
  if (auto hooks = meta.post_accumulate_grad_hooks.snapshot())
    for (const auto& entry : *hooks) entry.second(leaf);
}

}  // namespace autograd

AutogradMeta& autograd_meta(const Tensor& t) {
  auto* impl = t.impl();
  BRAID_CHECK(impl, "autograd: use of an undefined Tensor");
  if (!impl->autograd) impl->autograd = std::make_shared<AutogradMeta>();
  return *impl->autograd;
}

bool Tensor::requires_grad() const {
  auto* a = checked()->autograd.get();
  return a && (a->requires_grad || a->grad_fn);
}

Tensor& Tensor::requires_grad_(bool on) {
  BRAID_CHECK(!on || is_floating(dtype()),
              "requires_grad_: only floating-point tensors can require "
              "gradients, this one is ",
              dtype());
  BRAID_CHECK(is_leaf(),
              "requires_grad_: can only be changed on a leaf tensor (this one was computed by an op; "
              "use detach() first)");
  autograd_meta(*this).requires_grad = on;
  return *this;
}

bool Tensor::is_leaf() const {
  auto* a = checked()->autograd.get();
  return !a || !a->grad_fn;
}

Tensor Tensor::grad() const {
  auto* a = checked()->autograd.get();
  return a ? a->grad : Tensor();
}

void Tensor::set_grad(const Tensor& g) const {
  if (g.defined()) {
    BRAID_CHECK(g.shape() == shape() && g.dtype() == dtype() && g.device() == device(), "set_grad: gradient ",
                shape_str(g.shape()), " ", g.dtype(), " on ", g.device(), " does not match the tensor ",
                shape_str(shape()), " ", dtype(), " on ", device());
  }
  autograd_meta(*this).grad = g;
}

std::shared_ptr<autograd::Node> Tensor::grad_fn() const {
  auto* a = checked()->autograd.get();
  return a ? a->grad_fn : nullptr;
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  Tensor g = autograd::root_gradient(*this, gradient, "backward");
  if (const autograd::Engine* e = autograd::engine()) {
    e->backward(*this, g, retain_graph);
    return;
  }
  // Without nn's engine there is no graph: only a leaf can require grad, and its gradient is the given one.
  autograd::accumulate_grad(*this, g);
}

autograd::HookHandle Tensor::retain_grad() const {
  BRAID_CHECK(requires_grad(), "retain_grad: the tensor does not require grad, so no gradient reaches it");
  if (is_leaf()) return {};
  const autograd::Engine* e = autograd::engine();
  BRAID_CHECK(e, "retain_grad: no autograd engine is registered (link braid::nn)");
  return e->retain_grad(*this);
}

bool Tensor::retains_grad() const {
  auto* a = checked()->autograd.get();
  return a && a->grad_fn && a->retains_grad;
}

autograd::HookHandle Tensor::add_grad_hook(autograd::GradHook hook) const {
  BRAID_CHECK(hook, "register_hook: the hook is empty");
  BRAID_CHECK(requires_grad(),
              "register_hook: the tensor does not require grad, so no gradient reaches it (call requires_grad_() "
              "on a leaf first)");
  if (!is_leaf()) {
    const autograd::Engine* e = autograd::engine();
    BRAID_CHECK(e, "register_hook: no autograd engine is registered (link braid::nn)");
    return e->register_hook(*this, std::move(hook));
  }
  uint64_t id = autograd_meta(*this).grad_hooks.add(std::move(hook));
  std::weak_ptr<AutogradMeta> meta = impl()->autograd;
  return autograd::HookHandle([meta, id] {
    if (auto m = meta.lock()) m->grad_hooks.remove(id);
  });
}

Tensor Tensor::detach() const {
  auto* impl = checked();
  return make_tensor(impl->storage, impl->shape, impl->strides, impl->offset, impl->dtype);
}

autograd::HookHandle Tensor::register_post_accumulate_grad_hook(autograd::PostAccumulateGradHook hook) const {
  BRAID_CHECK(hook, "register_post_accumulate_grad_hook: the hook is empty");
  BRAID_CHECK(is_leaf() && requires_grad(),
              "register_post_accumulate_grad_hook: only leaf tensors that "
              "require grad have a gradient to accumulate");
  uint64_t id = autograd_meta(*this).post_accumulate_grad_hooks.add(std::move(hook));
  std::weak_ptr<AutogradMeta> meta = impl()->autograd;
  return autograd::HookHandle([meta, id] {
    if (auto m = meta.lock()) m->post_accumulate_grad_hooks.remove(id);
  });
}

void Tensor::set_data(const Tensor& src) const {
  auto* impl = checked();
  auto* s = src.checked();
  impl->storage = s->storage;
  impl->shape = s->shape;
  impl->strides = s->strides;
  impl->offset = s->offset;
  impl->dtype = s->dtype;
}

namespace {
void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& shape, size_t d, int64_t& pos, int indent,
               bool is_int) {
  if (shape.empty()) {
    if (is_int)
      os << int64_t(v[0]);
    else
      os << std::setprecision(4) << std::fixed << v[0];
    return;
  }
  os << "[";
  int64_t n = shape[d];
  const int64_t edge = 3;
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * edge + 1 && i == edge) {
      int64_t skip = n - 2 * edge;
      int64_t block = 1;
      for (size_t k = d + 1; k < shape.size(); ++k) block *= shape[k];
      pos += skip * block;
      i += skip - 1;
      os << (d + 1 == shape.size() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      continue;
    }
    if (d + 1 == shape.size()) {
      if (is_int)
        os << int64_t(v[pos]);
      else
        os << std::setprecision(4) << std::fixed << v[pos];
      ++pos;
    } else {
      print_rec(os, v, shape, d + 1, pos, indent + 1, is_int);
    }
    if (i + 1 < n) os << (d + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}
}  // namespace

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  os << "tensor(";
  std::vector<double> v = to_vector<double>();
  int64_t pos = 0;
  print_rec(os, v, shape(), 0, pos, 7, dtype() == DType::Int64);
  os << ", shape=" << shape_str(shape()) << ", dtype=" << dtype();
  if (!device().is_cpu()) os << ", device=" << device();
  if (requires_grad()) os << ", requires_grad";
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

}  // namespace braid
