// Removable hooks. Every hook registration returns a HookHandle whose remove() takes that hook out again (as
// PyTorch's RemovableHandle); dropping a handle leaves its hook in place, as in PyTorch, and ScopedHookHandle is the
// RAII form that removes it at the end of its scope. HookList is the list the hooks live in: copy-on-write, so a
// pass running the hooks works on its own snapshot while a hook (or another thread) adds or removes hooks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace braid::autograd {

class HookHandle {
 public:
  HookHandle() = default;
  explicit HookHandle(std::function<void()> remover) : remover_(std::move(remover)) {}
  HookHandle(HookHandle&& other) noexcept : remover_(std::exchange(other.remover_, nullptr)) {}
  // Overwriting a handle does not remove its hook (no more than destroying it does).
  HookHandle& operator=(HookHandle&& other) noexcept {
    if (this != &other) remover_ = std::exchange(other.remover_, nullptr);
    return *this;
  }
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  ~HookHandle() = default;

  // Takes the hook out. Later calls do nothing, nor does a call once the hook's tensor is gone.
  void remove() {
    if (auto remover = std::exchange(remover_, nullptr)) remover();
  }
  // False once remove() was called, and for a handle that holds no hook.
  bool active() const { return bool(remover_); }

 private:
  std::function<void()> remover_;
};

// Removes its hook when it goes out of scope.
class ScopedHookHandle {
 public:
  ScopedHookHandle() = default;
  ScopedHookHandle(HookHandle handle) : handle_(std::move(handle)) {}  // NOLINT: = tensor.register_hook(...)
  ScopedHookHandle(ScopedHookHandle&&) noexcept = default;
  ScopedHookHandle& operator=(ScopedHookHandle&& other) noexcept {
    if (this != &other) {
      handle_.remove();
      handle_ = std::move(other.handle_);
    }
    return *this;
  }
  ~ScopedHookHandle() { handle_.remove(); }

  void remove() { handle_.remove(); }
  // Gives up the scope: the hook stays until the returned handle removes it.
  HookHandle release() { return std::move(handle_); }
  bool active() const { return handle_.active(); }

 private:
  HookHandle handle_;
};

namespace detail {
// Hook lists share a small pool of mutexes: registering is rare, and a list with no hooks is read without one.
std::mutex& hook_list_mutex(const void* list);
uint64_t next_hook_id();
}  // namespace detail

template <class Fn>
class HookList {
 public:
  using Entries = std::vector<std::pair<uint64_t, Fn>>;

  // Appends fn; the id names it for remove().
  uint64_t add(Fn fn) {
    uint64_t id = detail::next_hook_id();
    std::lock_guard<std::mutex> lock(detail::hook_list_mutex(this));
    auto next = entries_ ? std::make_shared<Entries>(*entries_) : std::make_shared<Entries>();
    next->emplace_back(id, std::move(fn));
    entries_ = std::move(next);
    size_.store(entries_->size(), std::memory_order_release);
    return id;
  }

  void remove(uint64_t id) {
    std::lock_guard<std::mutex> lock(detail::hook_list_mutex(this));
    if (!entries_) return;
    auto next = std::make_shared<Entries>();
    for (const auto& entry : *entries_)
      if (entry.first != id) next->push_back(entry);
    entries_ = next->empty() ? nullptr : std::move(next);
    size_.store(entries_ ? entries_->size() : 0, std::memory_order_release);
  }

  // The hooks as they are now, in registration order (null when there are none).
  std::shared_ptr<const Entries> snapshot() const {
    if (size_.load(std::memory_order_acquire) == 0) return nullptr;
    std::lock_guard<std::mutex> lock(detail::hook_list_mutex(this));
    return entries_;
  }

  size_t size() const { return size_.load(std::memory_order_acquire); }
  bool empty() const { return size() == 0; }

 private:
  std::shared_ptr<const Entries> entries_;
  std::atomic<size_t> size_{0};
};

}  // namespace braid::autograd
