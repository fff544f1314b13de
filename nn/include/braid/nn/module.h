// Module: the base of every layer and model. It registers parameters, buffers and submodules by name, so that
// parameters(), named_parameters(), to(device), train()/eval() and state_dict() work for any model. Layers come
// as an Impl class plus a ModuleHolder (a shared handle), as in PyTorch's C++ frontend:
//   struct Net : nn::Module { nn::Linear fc = register_module("fc", nn::Linear(10, 1)); };
#pragma once

#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "braid/nn/functional.h"

namespace braid::nn {

// Names (dotted paths such as "fc.weight") to tensors; what checkpoints save and load.
using StateDict = std::map<std::string, Tensor>;

template <class Impl>
class ModuleHolder;

class Module {
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

  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves (or converts) every parameter and buffer in place; handles held elsewhere see the change.
  void to(Device device);
  void to(DType dtype);
  void zero_grad(bool set_to_none = true);

  StateDict state_dict() const;
  // Copies values in; with strict, missing or unexpected names are errors. Shapes and dtypes must match.
  void load_state_dict(const StateDict& dict, bool strict = true);

  const std::string& type_name() const { return type_name_; }

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
