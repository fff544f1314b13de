// Containers of modules, as PyTorch's: Sequential (runs its modules in order; indexable, and sliceable into stages
// that share the original's modules) and ModuleList (holds modules without a forward of its own). Both register
// their modules under "0", "1", ..., so parameters are named "layers.0.weight" as in PyTorch. seq[i] counts
// negative i from the end; an index out of range is a braid::Error.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "braid/nn/module.h"

namespace braid::nn {

namespace detail {
// The position seq[i] names in a container of `size` modules (i < 0 counts from the end); throws when outside.
size_t checked_index(const char* container, int64_t index, size_t size);

template <class M>
std::shared_ptr<M> module_pointer(const std::shared_ptr<M>& m) {
  return m;
}
template <class Holder>
  requires requires { typename Holder::ImplType; }
std::shared_ptr<typename Holder::ImplType> module_pointer(const Holder& h) {
  return h.ptr();
}

// The module at `index` as an M (the Impl type, e.g. LinearImpl); throws naming the module's type otherwise.
template <class M>
M& module_as(const char* container, size_t index, const std::shared_ptr<Module>& m) {
  auto* typed = dynamic_cast<M*>(m.get());
  BRAID_CHECK(typed, container, ".at: module ", index, " is a ", m->type_name(), ", not the type asked for");
  return *typed;
}
}  // namespace detail

// What Sequential and ModuleList share: their modules in order, indexed as seq[i] and iterated; error messages
// name the container by its type name.
class ModuleSequence : public Module {
 public:
  size_t size() const { return modules_.size(); }
  bool is_empty() const { return modules_.empty(); }
  const std::shared_ptr<Module>& operator[](int64_t index) const { return ptr(index); }
  const std::shared_ptr<Module>& ptr(int64_t index) const {
    return modules_[detail::checked_index(type_name().c_str(), index, size())];
  }
  template <class M>
  M& at(int64_t index) const {
    size_t i = detail::checked_index(type_name().c_str(), index, size());
    return detail::module_as<M>(type_name().c_str(), i, modules_[i]);
  }

  std::vector<std::shared_ptr<Module>>::const_iterator begin() const { return modules_.begin(); }
  std::vector<std::shared_ptr<Module>>::const_iterator end() const { return modules_.end(); }

 protected:
  explicit ModuleSequence(std::string type_name) : Module(std::move(type_name)) {}
  // Registers `module` under `name` and appends it; a null module is an error.
  void append_module(const std::string& name, std::shared_ptr<Module> module);

  std::vector<std::shared_ptr<Module>> modules_;
};

class Sequential;

// Runs its modules in order; each must have Tensor forward(const Tensor&). Iterating visits the modules.
class SequentialImpl : public ModuleSequence {
 public:
  SequentialImpl() : ModuleSequence("Sequential") {}
  template <class... Modules>
    requires(sizeof...(Modules) >= 1)
  explicit SequentialImpl(Modules&&... modules) : SequentialImpl() {
    (push_back(std::forward<Modules>(modules)), ...);
  }

  // Appends a module (a holder such as nn::Linear, or a shared_ptr to a module), named one past the last name.
  template <class M>
  void push_back(const M& module) {
    auto impl = detail::module_pointer(module);
    push_back_entry(std::to_string(next_name_), impl, [impl](const Tensor& x) { return impl->forward(x); });
  }
  Tensor forward(const Tensor& x);

  // Modules [begin, end) (negative counts from the end, as seq[i]) as a new Sequential that holds the same modules,
  // so the slice's parameters are the original's tensors: training a slice trains the original. The modules keep
  // their names ("2.weight" stays "2.weight"), as PyTorch's seq[2:4], so a stage's state dict uses the full
  // model's keys.
  Sequential slice(int64_t begin, int64_t end) const;

 private:
  using Forward = std::function<Tensor(const Tensor&)>;
  void push_back_entry(const std::string& name, std::shared_ptr<Module> module, Forward forward);

  std::vector<std::string> names_;
  std::vector<Forward> forwards_;
  int64_t next_name_ = 0;
};
BRAID_MODULE(Sequential);

// Holds modules under "0", "1", ... (parameters "layers.0.weight" when registered as "layers"); no forward: the
// owner calls the modules itself. Iterating visits the modules.
class ModuleListImpl : public ModuleSequence {
 public:
  ModuleListImpl() : ModuleSequence("ModuleList") {}
  template <class... Modules>
    requires(sizeof...(Modules) >= 1)
  explicit ModuleListImpl(Modules&&... modules) : ModuleListImpl() {
    (push_back(std::forward<Modules>(modules)), ...);
  }

  // Appends a module (a holder such as nn::Linear, or a shared_ptr to a module).
  template <class M>
  void push_back(const M& module) {
    append_module(std::to_string(size()), detail::module_pointer(module));
  }
  // The same as push_back, under Python's name.
  template <class M>
  void append(const M& module) {
    push_back(module);
  }
};
BRAID_MODULE(ModuleList);

}  // namespace braid::nn
