// Private to dist/: rank lists in messages and group checks (no MPI needed, so DDP and clip_grad_norm include it
// rather than process_group_impl.h).
#pragma once

#include <string>
#include <vector>

#include "braid/dist/process_group.h"

namespace braid::dist::detail {

// "[0, 2, 3]"
std::string ranks_str(const std::vector<int>& ranks);
// The ranks of `a` that are also ranks of `b`, in `a`'s order.
std::vector<int> shared_ranks(const ProcessGroup& a, const ProcessGroup& b);

}  // namespace braid::dist::detail
