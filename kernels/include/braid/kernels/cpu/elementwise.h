// CPU launchers for element-wise functors over strided operands. An N-operand loop (operand 0 is the output)
// is described by sizes and per-operand byte strides; broadcast dimensions have stride 0. Dimensions that are
// contiguous for every operand are merged first, so the common cases (all contiguous, a row broadcast) become
// one or two flat loops that the compiler vectorises, or that a functor's span kernel (span_kernels.h) runs; large
// loops are split over the OpenMP threads.
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "braid/kernels/cpu/span_kernels.h"
#include "braid/kernels/loop.h"

namespace braid::kernels::cpu {

using kernels::coalesce;
using kernels::kMaxDims;
using kernels::Loop;

// Below this many elements a loop runs on the calling thread: starting a parallel region costs more.
constexpr int64_t kParallelGrain = 32768;

// Calls inner(ptrs, inner_strides, n) over runs of the innermost dimension, in parallel when large.
template <int N, class Inner>
void run_loop(const Loop<N>& loop_in, std::array<char*, N> base, Inner&& inner) {
  Loop<N> L = coalesce(loop_in);
  std::array<int64_t, N> inner_strides{};
  if (L.ndim == 0) {
    inner(base, inner_strides, int64_t{1});
    return;
  }
  const int last = L.ndim - 1;
  const int64_t n_inner = L.sizes[last];
  for (int k = 0; k < N; ++k) inner_strides[k] = L.strides[k][last];
  int64_t total = n_inner;
  for (int d = 0; d < last; ++d) total *= L.sizes[d];

  auto chunk = [&](int64_t begin, int64_t end) {
    int64_t idx = begin;
    while (idx < end) {
      int64_t row = idx / n_inner, col = idx % n_inner;
      int64_t len = std::min(n_inner - col, end - idx);
      std::array<char*, N> p;
      for (int k = 0; k < N; ++k) p[k] = base[k] + col * L.strides[k][last];
      int64_t r = row;
      for (int d = last - 1; d >= 0 && r > 0; --d) {
        int64_t i = r % L.sizes[d];
        r /= L.sizes[d];
        for (int k = 0; k < N; ++k) p[k] += i * L.strides[k][d];
      }
      inner(p, inner_strides, len);
      idx += len;
    }
  };
  if (total < kParallelGrain || omp_get_max_threads() == 1 || omp_in_parallel()) {
    chunk(0, total);
    return;
  }
#pragma omp parallel
  {
    int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t per = (total + nt - 1) / nt;
    int64_t b = std::min(total, t * per), e = std::min(total, b + per);
    if (b < e) chunk(b, e);
  }
}

// out = f(a)
template <class F, class TO, class TA>
void unary(F f, const Loop<2>& loop, TO* out, const TA* a) {
  run_loop<2>(loop, {reinterpret_cast<char*>(out), reinterpret_cast<char*>(const_cast<TA*>(a))},
              [f](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t n) {
                TO* o = reinterpret_cast<TO*>(p[0]);
                const TA* x = reinterpret_cast<const TA*>(p[1]);
                if (s[0] == sizeof(TO) && s[1] == sizeof(TA)) {
                  if constexpr (UnarySpanKernel<F, TO, TA>) {
                    SpanKernel<F>::run(o, x, n);
                  } else {
#pragma omp simd
                    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<TO>(f(x[i]));
                  }
                } else if (s[0] == sizeof(TO) && s[1] == 0) {
                  TO v = static_cast<TO>(f(x[0]));
                  for (int64_t i = 0; i < n; ++i) o[i] = v;
                } else {
                  for (int64_t i = 0; i < n; ++i)
                    *reinterpret_cast<TO*>(p[0] + i * s[0]) =
                        static_cast<TO>(f(*reinterpret_cast<const TA*>(p[1] + i * s[1])));
                }
              });
}

// out = f(a, b)
template <class F, class T>
void binary(F f, const Loop<3>& loop, T* out, const T* a, const T* b) {
  run_loop<3>(loop,
              {reinterpret_cast<char*>(out), reinterpret_cast<char*>(const_cast<T*>(a)),
               reinterpret_cast<char*>(const_cast<T*>(b))},
              [f](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t n) {
                T* o = reinterpret_cast<T*>(p[0]);
                const T* x = reinterpret_cast<const T*>(p[1]);
                const T* y = reinterpret_cast<const T*>(p[2]);
                constexpr int64_t e = sizeof(T);
                if (s[0] == e && s[1] == e && s[2] == e) {
                  if constexpr (BinarySpanKernel<F, T>) {
                    SpanKernel<F>::run(o, x, y, n);
                  } else {
#pragma omp simd
                    for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
                  }
                } else if (s[0] == e && s[1] == e && s[2] == 0) {
                  const T yv = y[0];
#pragma omp simd
                  for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
                } else if (s[0] == e && s[1] == 0 && s[2] == e) {
                  const T xv = x[0];
#pragma omp simd
                  for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
                } else {
                  for (int64_t i = 0; i < n; ++i)
                    *reinterpret_cast<T*>(p[0] + i * s[0]) = f(*reinterpret_cast<const T*>(p[1] + i * s[1]),
                                                               *reinterpret_cast<const T*>(p[2] + i * s[2]));
                }
              });
}

}  // namespace braid::kernels::cpu
