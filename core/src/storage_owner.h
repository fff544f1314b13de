// Storage whose version counter lives in the same heap allocation as the memory's ownership record (not
// installed): a storage costs one allocation besides its memory, where a shared_ptr with a deleter plus a
// counter of its own would cost two.
#pragma once

#include <memory>
#include <utility>

#include "braid/core/tensor.h"

namespace braid::detail {

// Owns p, which release(p) frees when the last view of the storage (or the last holder of its counter) is gone.
template <class Release>
Storage owned_storage(void* p, size_t nbytes, Device device, Release release) {
  struct Owner {
    void* p;
    Release release;
    VersionCounter version{0};
    // Declared for make_shared: clang before 16 cannot build an aggregate from a parenthesised list.
    Owner(void* memory, Release free) : p(memory), release(std::move(free)) {}
    ~Owner() { release(p); }
  };
  std::shared_ptr<Owner> owner;
  try {
    owner = std::make_shared<Owner>(p, release);
  } catch (...) {
    release(p);
    throw;
  }
  VersionCounter* version = &owner->version;
  std::shared_ptr<void> memory(owner, p);
  return Storage{std::move(memory), nbytes, device, std::shared_ptr<VersionCounter>(std::move(owner), version)};
}

}  // namespace braid::detail
