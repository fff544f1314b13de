// Whether tensors share memory, and the checks in-place ops run with it (PyTorch's rules): an in-place op refuses
// a destination where two elements share memory (an expand()ed tensor: each element would be written several
// times), and a source that overlaps the destination without being exactly the same elements (add_(a,
// transpose(a)) would read values it has already overwritten). An exact alias (add_(a, a)) is fine, because
// element-wise ops read each element before writing it. Where the geometry is too irregular to prove two sets of
// elements apart, the answer is "they overlap": a refused call can be rewritten with clone(), a wrong result
// cannot be noticed.
#pragma once

#include "braid/core/tensor.h"

namespace braid {

enum class MemoryOverlap {
  None,     // no byte in common (or not proven otherwise impossible: different devices, empty tensors)
  Full,     // the same elements: same start, dtype, sizes and strides
  Partial,  // some memory in common, or not provably none
};

// True when two indices of `t` may address the same element (a stride 0 on a dimension of size > 1, or strides
// that cannot be proven apart).
bool has_internal_overlap(const Tensor& t);
MemoryOverlap memory_overlap(const Tensor& a, const Tensor& b);

// The checks of an in-place op `op`, throwing braid::Error that names it.
void check_no_internal_overlap(const char* op, const Tensor& dst);
// Refuses a partial overlap of src with dst; returns None or Full (an exact alias, which the op may skip).
MemoryOverlap check_no_partial_overlap(const char* op, const Tensor& dst, const Tensor& src);
// Refuses any overlap: for two tensors an op writes (an optimizer's parameter and its state), or an output that
// an op reads across elements while writing (a matrix product's operands).
void check_no_overlap(const char* op, const Tensor& a, const char* a_name, const Tensor& b, const char* b_name);

}  // namespace braid
