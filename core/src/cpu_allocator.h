// The CPU caching allocator behind Storage::allocate (its controls are in braid/core/cpu.h).
#pragma once

#include <cstddef>

#include "braid/core/tensor.h"

namespace braid::cpu::detail {

Storage allocate(size_t nbytes, bool huge_pages);

}  // namespace braid::cpu::detail
