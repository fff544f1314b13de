// Tensor: the one type users hold. A Tensor is a shared handle to a TensorImpl (shape, strides, offset, dtype and a
// Storage shared by all views of the same data) plus an optional autograd slot. Copying a Tensor shares it, as in
// PyTorch. core/ owns the slot; the graph and the differentiable ops live in nn/ (autograd), which registers the
// engine that Tensor::backward, retain_grad and register_hook on non-leaf tensors call.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "braid/core/device.h"
#include "braid/core/dtype.h"
#include "braid/core/error.h"
#include "braid/core/hooks.h"

namespace braid {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// Counts the in-place writes to one storage (PyTorch's version counter): every in-place op bumps it, and a
// backward that saved a tensor checks that the count did not move since.
using VersionCounter = std::atomic<uint64_t>;

// Memory of one device. `ptr` owns it (with the device's deleter) or wraps a user buffer. Copies (views) share
// the memory and its version counter; every newly made Storage starts a counter of its own. allocate() puts the
// counter in the memory's ownership record (one heap allocation for both), so there a holder of the counter alone
// keeps the memory too.
struct Storage {
  std::shared_ptr<void> ptr;
  size_t nbytes = 0;
  Device device;
  std::shared_ptr<VersionCounter> version = std::make_shared<VersionCounter>(0);

  // huge_pages: on the CPU, 2 MiB-aligned and backed by transparent huge pages whatever the size (rounded up to
  // 2 MiB); CPU storage from 2 MiB up always is. Ignored on CUDA.
  static Storage allocate(size_t nbytes, Device device, bool huge_pages = false);
};

namespace nn {
struct ParallelAttributes;
}
class Tensor;
struct AutogradMeta;

namespace autograd {
struct Node;
// Sees the gradient flowing to a tensor and may return a replacement of the same shape, dtype and device (an
// undefined tensor keeps the gradient as it is).
using GradHook = std::function<Tensor(const Tensor& grad)>;
// Sees a leaf once its gradient is final in a backward pass.
using PostAccumulateGradHook = std::function<void(const Tensor& leaf)>;
}  // namespace autograd

struct TensorImpl {
  Storage storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  std::shared_ptr<AutogradMeta> autograd;  // null for tensors that never took part in autograd
  // How this parameter is sharded across ranks (nn/parallel_attributes.h); null for a replicated one. A slot on the
  // tensor, not on the module, because clipping and DDP receive bare tensors.
  std::shared_ptr<const nn::ParallelAttributes> parallel;
};

struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  bool requires_grad = false;

  TensorOptions() = default;
  TensorOptions(DType t) : dtype(t) {}       // NOLINT: implicit on purpose, randn({2}, DType::Float64)
  TensorOptions(Device d) : device(d) {}     // NOLINT: randn({2}, device)
  TensorOptions(DType t, Device d, bool rg = false) : dtype(t), device(d), requires_grad(rg) {}
  TensorOptions with_requires_grad(bool rg = true) const { auto o = *this; o.requires_grad = rg; return o; }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

  const Shape& shape() const { return checked()->shape; }
  const Shape& strides() const { return checked()->strides; }
  int64_t offset() const { return checked()->offset; }
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const;
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return checked()->dtype; }
  Device device() const { return checked()->storage.device; }
  const Storage& storage() const { return checked()->storage; }
  bool is_contiguous() const;
  // The storage's version counter: how many in-place writes it has seen (shared by all views).
  uint64_t version() const { return storage().version->load(std::memory_order_acquire); }
  // Called by every op that writes this tensor's memory in place.
  void bump_version() const { storage().version->fetch_add(1, std::memory_order_acq_rel); }

  // Pointer to the first element (storage + offset); data<T>() checks that T is the tensor's dtype.
  void* raw_data() const;
  template <class T> T* data() const {
    BRAID_CHECK(dtype() == dtype_of<T>::value, "Tensor::data: tensor is ", dtype(), ", asked for ",
                dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw_data());
  }
  // The single value of a one-element tensor, converted to T.
  template <class T> T item() const;
  // All elements in logical (row-major) order, converted to T.
  template <class T> std::vector<T> to_vector() const;

  // ---- autograd slot ----
  bool requires_grad() const;
  // Marks a leaf as requiring a gradient; only floating-point leaves can.
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const;
  // The accumulated gradient (undefined until a backward reaches this tensor).
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  std::shared_ptr<autograd::Node> grad_fn() const;
  // Reverse-mode differentiation from this tensor: a scalar, or any shape with `gradient` of the same shape.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  // Shares storage, drops history.
  Tensor detach() const;
  // A non-leaf tensor keeps the gradient backward passes compute for it in .grad (summed over passes, as a
  // leaf's). On a leaf that requires grad it does nothing (a leaf keeps its gradient anyway), and a second call
  // returns an inactive handle; removing the first handle stops the retaining.
  autograd::HookHandle retain_grad() const;
  bool retains_grad() const;
  // Calls hook(grad) with the gradient flowing to this tensor (leaf or not) before it is used: hook may return a
  // replacement (a Tensor of the same shape, dtype and device) or nothing / an undefined tensor to keep it.
  // Hooks run in registration order, in backward passes and in autograd::grad alike.
  template <class F>
  autograd::HookHandle register_hook(F&& hook) const {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, const Tensor&>>) {
      return add_grad_hook([fn = std::forward<F>(hook)](const Tensor& g) mutable {
        fn(g);
        return Tensor();
      });
    } else {
      return add_grad_hook(autograd::GradHook(std::forward<F>(hook)));
    }
  }
  // Calls hook(leaf) each time this leaf's gradient is final in a backward pass (all contributions summed);
  // DistributedDataParallel starts its all-reduces from here. Not called by autograd::grad, which leaves .grad alone.
  autograd::HookHandle register_post_accumulate_grad_hook(autograd::PostAccumulateGradHook hook) const;

  // Replaces this tensor's storage, shape, strides and dtype with those of `src`, in place, for every handle
  // sharing it (Module::to moves parameters this way).
  void set_data(const Tensor& src) const;

  std::string to_string() const;

 private:
  TensorImpl* checked() const {
    BRAID_CHECK(impl_, "use of an undefined Tensor");
    return impl_.get();
  }
  autograd::HookHandle add_grad_hook(autograd::GradHook hook) const;
  std::shared_ptr<TensorImpl> impl_;
};

struct AutogradMeta {
  bool requires_grad = false;
  bool retains_grad = false;  // non-leaves: retain_grad() was called
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;         // null for leaves
  std::weak_ptr<autograd::Node> grad_accumulator;  // leaves: the node that sums into .grad
  // Leaves' register_hook hooks (a non-leaf's live on its grad_fn, which outlives the tensor in the graph).
  autograd::HookList<autograd::GradHook> grad_hooks;
  autograd::HookList<autograd::PostAccumulateGradHook> post_accumulate_grad_hooks;
  // Guards grad and grad_accumulator: several threads may run backward passes into one leaf at once.
  std::mutex mutex;
};

AutogradMeta& autograd_meta(const Tensor& t);  // creates the slot on first use

namespace autograd {

// What core calls in nn's autograd engine, which nn registers once, when it is loaded. A graph only exists once nn
// recorded it, so the engine is there whenever a non-leaf tensor is.
struct Engine {
  void (*backward)(const Tensor& root, const Tensor& gradient, bool retain_graph);
  HookHandle (*register_hook)(const Tensor& non_leaf, GradHook hook);
  HookHandle (*retain_grad)(const Tensor& non_leaf);
};
void set_engine(const Engine* engine);
const Engine* engine();  // null when no engine is registered

// The gradient a backward from `root` starts with: `given`, checked against the root, or ones for a one-element
// root when `given` is undefined. `op` names the caller in errors, followed by " (output i)" for a root that is
// output i of several (`output` >= 0).
Tensor root_gradient(const Tensor& root, const Tensor& given, const char* op, int64_t output = -1);
// g after each of `hooks` in turn (register_hook's contract).
Tensor run_grad_hooks(const HookList<GradHook>& hooks, Tensor g);
// AccumulateGrad's work, safe from several threads at once: runs the leaf's gradient hooks on g, sums it into
// .grad, then calls the leaf's post-accumulate-grad hooks.
void accumulate_grad(const Tensor& leaf, Tensor g);

}  // namespace autograd

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Makes a tensor that views `storage` with the given geometry.
Tensor make_tensor(Storage storage, Shape shape, Shape strides, int64_t offset, DType dtype);

}  // namespace braid
