#include "braid/core/memory_overlap.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

namespace braid {

namespace {

// A dimension that reaches more than one element: its stride (in elements or bytes) and size.
struct Extent {
  int64_t stride;
  int64_t size;
};

// Dimensions of size 1 address one element whatever their stride, so only the others describe the memory.
std::vector<Extent> spanning_dims(const Tensor& t) {
  std::vector<Extent> dims;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.shape()[d] > 1) dims.push_back({t.strides()[d], t.shape()[d]});
  return dims;
}

struct ByteRange {
  intptr_t lo, hi;  // [lo, hi)
};

// Of a non-empty tensor (a dimension of size 1 reaches nothing, so every dimension can be summed).
ByteRange byte_range(const Tensor& t) {
  int64_t es = int64_t(element_size(t.dtype()));
  intptr_t begin = reinterpret_cast<intptr_t>(t.raw_data());
  int64_t low = 0, high = es;
  for (int64_t d = 0; d < t.dim(); ++d) {
    int64_t reach = (t.shape()[d] - 1) * t.strides()[d] * es;
    (reach < 0 ? low : high) += reach;
  }
  return {begin + intptr_t(low), begin + intptr_t(high)};
}

// The common case, decided without looking at the geometry: two allocations that do not meet.
bool storages_apart(const Storage& a, const Storage& b) {
  auto lo_a = reinterpret_cast<intptr_t>(a.ptr.get()), lo_b = reinterpret_cast<intptr_t>(b.ptr.get());
  return lo_a + intptr_t(a.nbytes) <= lo_b || lo_b + intptr_t(b.nbytes) <= lo_a;
}

// Same start and dtype, and the same spanning dimensions (compared where they are: an exact alias, add_(a, a), is
// a common case of an in-place op, so no copies of the geometry are made for it).
bool same_elements(const Tensor& a, const Tensor& b) {
  if (a.raw_data() != b.raw_data() || a.dtype() != b.dtype()) return false;
  const Shape &sa = a.shape(), &sb = b.shape();
  for (size_t i = 0, j = 0;; ++i, ++j) {
    while (i < sa.size() && sa[i] <= 1) ++i;
    while (j < sb.size() && sb[j] <= 1) ++j;
    if (i == sa.size() || j == sb.size()) return i == sa.size() && j == sb.size();
    if (sa[i] != sb[j] || a.strides()[i] != b.strides()[j]) return false;
  }
}

// The bytes a tensor covers, as dimensions in bytes: one of stride 1 across each element's own bytes, then the
// spanning dimensions (broadcast ones, of stride 0, add no bytes). Empty when the geometry is outside what
// provably_disjoint handles (negative strides, two dimensions of one stride).
std::vector<Extent> byte_dims(const Tensor& t) {
  int64_t es = int64_t(element_size(t.dtype()));
  std::vector<Extent> dims{{1, es}};
  for (const Extent& e : spanning_dims(t)) {
    if (e.stride < 0) return {};
    if (e.stride > 0) dims.push_back({e.stride * es, e.size});
  }
  std::sort(dims.begin(), dims.end(), [](const Extent& x, const Extent& y) { return x.stride < y.stride; });
  for (size_t i = 1; i < dims.size(); ++i)
    if (dims[i].stride == dims[i - 1].stride) return {};
  return dims;
}

struct Interval {
  int64_t begin, end;  // [begin, end)
};

// Per digit of a mixed-radix byte address (radices from `chain`), the digits a tensor starting `offset` bytes
// from the base covers; false when an index would carry into the next digit (the set is then no box).
bool digit_box(const std::vector<Extent>& dims, int64_t offset, const std::vector<int64_t>& chain,
               std::vector<Interval>& box) {
  box.clear();
  for (size_t k = 0; k < chain.size(); ++k) {
    bool top = k + 1 == chain.size();
    int64_t radix = top ? std::numeric_limits<int64_t>::max() : chain[k + 1] / chain[k];
    int64_t digit = top ? offset / chain[k] : offset / chain[k] % radix;
    int64_t size = 1;
    for (const Extent& e : dims)
      if (e.stride == chain[k]) size = e.size;
    if (size > radix - digit) return false;
    box.push_back({digit, digit + size});
  }
  return true;
}

// Proves two tensors' bytes apart when every stride of both divides the next larger one, as for views of one
// tensor cut by narrow, select and transpose (interleaved column blocks included). Each tensor is then a box in
// the digits of a byte address, and two boxes are apart when they are apart along one digit.
bool provably_disjoint(const Tensor& a, const Tensor& b, intptr_t base) {
  std::vector<Extent> da = byte_dims(a), db = byte_dims(b);
  if (da.empty() || db.empty()) return false;
  std::vector<int64_t> chain;
  for (const auto* dims : {&da, &db})
    for (const Extent& e : *dims) chain.push_back(e.stride);
  std::sort(chain.begin(), chain.end());
  chain.erase(std::unique(chain.begin(), chain.end()), chain.end());
  for (size_t k = 1; k < chain.size(); ++k)
    if (chain[k] % chain[k - 1] != 0) return false;
  std::vector<Interval> ba, bb;
  if (!digit_box(da, int64_t(reinterpret_cast<intptr_t>(a.raw_data()) - base), chain, ba)) return false;
  if (!digit_box(db, int64_t(reinterpret_cast<intptr_t>(b.raw_data()) - base), chain, bb)) return false;
  for (size_t k = 0; k < chain.size(); ++k)
    if (ba[k].end <= bb[k].begin || bb[k].end <= ba[k].begin) return true;
  return false;
}

std::string geometry(const Tensor& t) {
  return "shape " + shape_str(t.shape()) + ", strides " + shape_str(t.strides()) + ", offset " +
         std::to_string(t.offset());
}

}  // namespace

bool has_internal_overlap(const Tensor& t) {
  if (t.numel() <= 1 || t.is_contiguous()) return false;
  std::vector<Extent> dims = spanning_dims(t);
  for (Extent& e : dims) e.stride = std::abs(e.stride);
  std::sort(dims.begin(), dims.end(), [](const Extent& x, const Extent& y) { return x.stride < y.stride; });
  // Each stride must step past everything the smaller ones reach, or two indices may meet.
  int64_t reach = 1;
  for (const Extent& e : dims) {
    if (e.stride < reach) return true;
    reach += (e.size - 1) * e.stride;
  }
  return false;
}

MemoryOverlap memory_overlap(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.numel() == 0 || b.numel() == 0 || a.device() != b.device())
    return MemoryOverlap::None;
  if (storages_apart(a.storage(), b.storage())) return MemoryOverlap::None;
  ByteRange ra = byte_range(a), rb = byte_range(b);
  if (ra.hi <= rb.lo || rb.hi <= ra.lo) return MemoryOverlap::None;
  if (same_elements(a, b)) return MemoryOverlap::Full;
  return provably_disjoint(a, b, std::min(ra.lo, rb.lo)) ? MemoryOverlap::None : MemoryOverlap::Partial;
}

void check_no_internal_overlap(const char* op, const Tensor& dst) {
  BRAID_CHECK(!has_internal_overlap(dst), op, ": the destination (", geometry(dst),
              ") has internal overlap: more than one of its elements refers to the same memory (an expand()ed "
              "tensor?); write into a clone() or contiguous() copy instead");
}

MemoryOverlap check_no_partial_overlap(const char* op, const Tensor& dst, const Tensor& src) {
  MemoryOverlap o = memory_overlap(dst, src);
  BRAID_CHECK(o != MemoryOverlap::Partial, op, ": the source (", geometry(src),
              ") partially overlaps the destination (", geometry(dst),
              ") in memory (a transposed or shifted view of it?); pass a clone() of the source");
  return o;
}

void check_no_overlap(const char* op, const Tensor& a, const char* a_name, const Tensor& b, const char* b_name) {
  BRAID_CHECK(memory_overlap(a, b) == MemoryOverlap::None, op, ": the ", a_name, " (", geometry(a), ") and the ",
              b_name, " (", geometry(b), ") share memory; give each its own storage (clone() one of them)");
}

}  // namespace braid
