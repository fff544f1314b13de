// The values the multi-rank collective tests contribute and expect, worked out by hand from each rank's number.
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "braid/core/creation.h"
#include "braid/dist/process_group.h"

namespace braid::dist_test {

// Rank r's element i: distinct across ranks, of both signs, so sum, max and min all pick different ranks' values.
inline double value(int r, int64_t i) {
  return double((r + 1) * (i % 5 + 1)) * (i % 2 ? -1.0 : 1.0) + double(i / 3);
}

template <class T>
Tensor rank_tensor(int r, const Shape& shape) {
  std::vector<T> v(size_t(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = T(value(r, int64_t(i)));
  return from_vector(v, shape);
}

// What `op` over `ranks` of element i gives, computed in T the way the backends do (avg: sum, then divide).
template <class T>
T expected(dist::ReduceOp op, const std::vector<int>& ranks, int64_t i) {
  T acc = T(value(ranks[0], i));
  for (size_t k = 1; k < ranks.size(); ++k) {
    T x = T(value(ranks[k], i));
    if (op == dist::ReduceOp::Max)
      acc = std::max(acc, x);
    else if (op == dist::ReduceOp::Min)
      acc = std::min(acc, x);
    else
      acc = acc + x;
  }
  if (op == dist::ReduceOp::Avg) acc = acc / T(ranks.size());
  return acc;
}

inline std::vector<int> all_ranks(int n) {
  std::vector<int> r(static_cast<size_t>(n));
  std::iota(r.begin(), r.end(), 0);
  return r;
}

}  // namespace braid::dist_test
