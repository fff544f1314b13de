// Module: the base of every layer and model. It registers parameters, buffers and submodules by name, so that
// parameters(), named_parameters(), to(device), train()/eval() and state_dict() work for any model. Layers come
// as an Impl class plus a ModuleHolder (a shared handle), as in PyTorch's C++ frontend:
//   struct Net : nn::Module { nn::Linear fc = register_module("fc", nn::Linear(10, 1)); };
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "braid/nn/functional.h"
#include "braid/nn/parallel_attributes.h"

namespace braid::nn {

// Names (dotted paths such as "fc.weight") to tensors; what checkpoints save and load.
using StateDict = std::map<std::string, Tensor>;

template <class Impl>
class ModuleHolder;

// Held by std::shared_ptr as a rule (ModuleHolder, register_module); named_modules() and apply() also work on a
// module that is not (a model on the stack), handing out a non-owning pointer for it.
class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Registers a parameter (marked as requiring grad unless requires_grad is false) and returns it.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  // Registers state that is saved and moved with the module but not trained.
  Tensor register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  template <class Holder>
    requires requires { typename Holder::ImplType; }
  Holder register_module(const std::string& name, Holder m) {
    add_child(name, m.ptr());
    return m;
  }

  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  // This module ("") and every submodule below it, depth first, named by dotted path ("block.fc"), each listed
  // once even when registered under several names (as PyTorch).
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules();
  std::vector<std::shared_ptr<Module>> modules();
  // Calls fn on every submodule (children before their parent, each once) and last on this module, as PyTorch's
  // Module.apply; e.g. to re-initialise every Linear.
  Module& apply(const std::function<void(Module&)>& fn);

  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves (or converts) every parameter and buffer in place; handles held elsewhere see the change, and so do
  // their parallel attributes.
  void to(Device device);
  void to(DType dtype);
  void zero_grad(bool set_to_none = true);

  // Detached tensors sharing the parameters' memory; each keeps its parameter's parallel attributes, so a checkpoint
  // writer can tell shards from whole tensors.
  StateDict state_dict() const;
  // Copies values in; with strict, missing or unexpected names are errors. Shapes and dtypes must match.
  void load_state_dict(const StateDict& dict, bool strict = true);

  const std::string& type_name() const { return type_name_; }

 protected:
  // Sets only this module's flag (train() also sets every child's), for a container made of existing modules.
  void set_training_flag(bool on) { training_ = on; }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void check_new_name(const std::string& name) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// A shared handle to a module implementation; calling it calls forward.
template <class Impl>
class ModuleHolder {
 public:
  using ImplType = Impl;
  template <class... Args>
    requires(std::is_constructible_v<Impl, Args...> &&
             !(sizeof...(Args) == 1 && (std::is_base_of_v<ModuleHolder, std::decay_t<Args>> && ...)))
  explicit ModuleHolder(Args&&... args) : impl_(std::make_shared<Impl>(std::forward<Args>(args)...)) {}
  ModuleHolder(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}  // NOLINT: wraps an existing module

  Impl* operator->() const { return impl_.get(); }
  Impl& operator*() const { return *impl_; }
  Impl* get() const { return impl_.get(); }
  const std::shared_ptr<Impl>& ptr() const { return impl_; }

  template <class... Args>
  decltype(auto) operator()(Args&&... args) const {
    return impl_->forward(std::forward<Args>(args)...);
  }
  // seq[i] for containers (Sequential, ModuleList), as in PyTorch's C++ frontend.
  template <class Index>
  decltype(auto) operator[](Index&& index) const {
    return (*impl_)[std::forward<Index>(index)];
  }

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace braid::nn

// Declares the holder `Name` for the module implementation `Name##Impl`.
#define BRAID_MODULE(Name)                                          \
  class Name : public ::braid::nn::ModuleHolder<Name##Impl> {       \
   public:                                                          \
    using ::braid::nn::ModuleHolder<Name##Impl>::ModuleHolder;      \
  }
