// Private to dist/: the Work decorator that puts ProcessGroup operations on the trace (see braid/dist/trace.h).
// The group wraps a backend's Work only while a trace is recorded; the event spans the operation's issue to its
// completion (as the communication thread stamped it over MPI, else when this rank first saw it complete), and a
// wait() that blocks is a wait event of its own.
#pragma once

#include <string>

#include "braid/dist/process_group.h"
#include "braid/dist/trace.h"

namespace braid::dist::detail {

inline int64_t tensor_bytes(const Tensor& t) {
  return t.defined() ? t.numel() * int64_t(element_size(t.dtype())) : 0;
}

// `bytes`: the tensors' size; `peer`: the global rank of a send's destination or a receive's source, else -1.
WorkHandle traced_work(WorkHandle work, std::string op, int64_t bytes, int peer = -1, int tag = -1);

// The traced form of a group's operation, or `work` itself (one branch) when no trace is recorded.
inline WorkHandle maybe_traced(WorkHandle work, const char* op, int64_t bytes, int peer = -1, int tag = -1) {
  if (!is_tracing()) return work;
  return traced_work(std::move(work), op, bytes, peer, tag);
}

}  // namespace braid::dist::detail
