#include "braid/kernels/cpu/reduce.h"

#include <omp.h>

#include <Eigen/Core>

#include <cmath>
#include <limits>
#include <vector>

#include "braid/kernels/cpu/elementwise.h"

namespace braid::kernels::cpu {

namespace {

template <class T>
struct Combine {
  ReduceOp op;
  double identity() const {
    if (op == ReduceOp::Sum) return 0.0;
    return op == ReduceOp::Max ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  }
  double operator()(double acc, double x) const {
    switch (op) {
      case ReduceOp::Sum: return acc + x;
      case ReduceOp::Max: return (x > acc || x != x) ? x : acc;  // NaN propagates
      default: return (x < acc || x != x) ? x : acc;
    }
  }
};

}  // namespace

template <class T>
void reduce(ReduceOp op, const T* in, T* out, int64_t outer, int64_t r, int64_t inner) {
  Combine<T> c{op};
  const bool parallel = outer * r * inner >= kParallelGrain && !omp_in_parallel();
  if (inner == 1) {
    if (outer >= omp_get_max_threads() || !parallel) {
#pragma omp parallel for if (parallel)
      for (int64_t o = 0; o < outer; ++o) {
        const T* row = in + o * r;
        double acc = c.identity();
        if (op == ReduceOp::Sum) {
#pragma omp simd reduction(+ : acc)
          for (int64_t j = 0; j < r; ++j) acc += double(row[j]);
        } else {
          for (int64_t j = 0; j < r; ++j) acc = c(acc, double(row[j]));
        }
        out[o] = T(acc);
      }
    } else {  // few long rows: split each row over the threads
      for (int64_t o = 0; o < outer; ++o) {
        const T* row = in + o * r;
        double acc = c.identity();
        if (op == ReduceOp::Sum) {
#pragma omp parallel for simd reduction(+ : acc)
          for (int64_t j = 0; j < r; ++j) acc += double(row[j]);
        } else {
          int nt = omp_get_max_threads();
          std::vector<double> part(nt, c.identity());
#pragma omp parallel
          {
            double a = c.identity();
#pragma omp for
            for (int64_t j = 0; j < r; ++j) a = c(a, double(row[j]));
            part[omp_get_thread_num()] = a;
          }
          for (double p : part) acc = c(acc, p);
        }
        out[o] = T(acc);
      }
    }
    return;
  }
  // inner > 1: accumulate whole rows of `inner` elements, vectorised along inner.
#pragma omp parallel for if (parallel)
  for (int64_t o = 0; o < outer; ++o) {
    std::vector<double> acc(inner, c.identity());
    const T* block = in + o * r * inner;
    for (int64_t j = 0; j < r; ++j) {
      const T* row = block + j * inner;
      if (op == ReduceOp::Sum) {
#pragma omp simd
        for (int64_t k = 0; k < inner; ++k) acc[k] += double(row[k]);
      } else {
        for (int64_t k = 0; k < inner; ++k) acc[k] = c(acc[k], double(row[k]));
      }
    }
    for (int64_t k = 0; k < inner; ++k) out[o * inner + k] = T(acc[k]);
  }
}

template <class T>
void arg_reduce(bool max, const T* in, int64_t* out, int64_t outer, int64_t r, int64_t inner) {
  const bool parallel = outer * r * inner >= kParallelGrain && !omp_in_parallel();
#pragma omp parallel for collapse(2) if (parallel)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < inner; ++k) {
      const T* p = in + o * r * inner + k;
      int64_t best = 0;
      T bv = p[0];
      for (int64_t j = 1; j < r; ++j) {
        T v = p[j * inner];
        if (bv != bv) break;  // NaN wins, as in PyTorch
        if (max ? (v > bv || v != v) : (v < bv || v != v)) {
          bv = v;
          best = j;
        }
      }
      out[o * inner + k] = best;
    }
  }
}

template <class T>
void softmax(bool log, const T* in, T* out, int64_t outer, int64_t dim, int64_t inner) {
  const bool parallel = outer * dim * inner >= kParallelGrain / 4 && !omp_in_parallel();
  if (inner == 1 && dim > 0) {  // contiguous rows: Eigen's vectorised exp
    using Row = Eigen::Array<T, Eigen::Dynamic, 1>;
#pragma omp parallel for if (parallel)
    for (int64_t o = 0; o < outer; ++o) {
      Eigen::Map<const Row> x(in + o * dim, dim);
      Eigen::Map<Row> y(out + o * dim, dim);
      const T m = x.maxCoeff();
      if (log) {
        y = x - m;
        const T lse = T(std::log(y.exp().template cast<double>().sum()));
        y -= lse;
      } else {
        y = (x - m).exp();
        y *= T(1.0 / y.template cast<double>().sum());
      }
    }
    return;
  }
#pragma omp parallel for collapse(2) if (parallel)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < inner; ++k) {
      const T* x = in + o * dim * inner + k;
      T* y = out + o * dim * inner + k;
      T m = x[0];
      for (int64_t j = 1; j < dim; ++j) m = x[j * inner] > m ? x[j * inner] : m;
      double s = 0;
      if (log) {
        for (int64_t j = 0; j < dim; ++j) s += std::exp(double(x[j * inner] - m));
        const T lse = T(std::log(s));
        for (int64_t j = 0; j < dim; ++j) y[j * inner] = (x[j * inner] - m) - lse;
      } else {
        for (int64_t j = 0; j < dim; ++j) {
          T e = std::exp(x[j * inner] - m);
          y[j * inner] = e;
          s += e;
        }
        T inv = T(1.0 / s);
        for (int64_t j = 0; j < dim; ++j) y[j * inner] *= inv;
      }
    }
  }
}

template <class T>
void softmax_backward(bool log, const T* g, const T* y, T* gi, int64_t outer, int64_t dim, int64_t inner) {
  const bool parallel = outer * dim * inner >= kParallelGrain / 4 && !omp_in_parallel();
#pragma omp parallel for collapse(2) if (parallel)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < inner; ++k) {
      int64_t base = o * dim * inner + k;
      double s = 0;
      if (log) {
        for (int64_t j = 0; j < dim; ++j) s += g[base + j * inner];
        for (int64_t j = 0; j < dim; ++j)
          gi[base + j * inner] = g[base + j * inner] - std::exp(y[base + j * inner]) * T(s);
      } else {
        for (int64_t j = 0; j < dim; ++j) s += double(g[base + j * inner]) * y[base + j * inner];
        for (int64_t j = 0; j < dim; ++j)
          gi[base + j * inner] = y[base + j * inner] * (g[base + j * inner] - T(s));
      }
    }
  }
}

template <class T>
int64_t nll_forward(const T* lp, const int64_t* target, T* loss, int64_t n, int64_t c) {
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = target[i];
    if (t < 0 || t >= c) return i;
    loss[i] = -lp[i * c + t];
  }
  return -1;
}

template <class T>
void nll_backward(bool from_log_softmax, const T* lp, const int64_t* target, const T* grad_loss,
                  bool per_sample_grad, T scale, T* gi, int64_t n, int64_t c) {
  const bool parallel = n * c >= kParallelGrain && !omp_in_parallel();
#pragma omp parallel for if (parallel)
  for (int64_t i = 0; i < n; ++i) {
    T s = grad_loss[per_sample_grad ? i : 0] * scale;
    T* row = gi + i * c;
    const T* lrow = lp + i * c;
    if (from_log_softmax) {
      for (int64_t j = 0; j < c; ++j) row[j] = s * std::exp(lrow[j]);
    } else {
      for (int64_t j = 0; j < c; ++j) row[j] = 0;
    }
    row[target[i]] -= s;
  }
}

#define BRAID_INSTANTIATE(T)                                                                              \
  template void reduce<T>(ReduceOp, const T*, T*, int64_t, int64_t, int64_t);                            \
  template void arg_reduce<T>(bool, const T*, int64_t*, int64_t, int64_t, int64_t);                      \
  template void softmax<T>(bool, const T*, T*, int64_t, int64_t, int64_t);                               \
  template void softmax_backward<T>(bool, const T*, const T*, T*, int64_t, int64_t, int64_t);            \
  template int64_t nll_forward<T>(const T*, const int64_t*, T*, int64_t, int64_t);                       \
  template void nll_backward<T>(bool, const T*, const int64_t*, const T*, bool, T, T*, int64_t, int64_t);
BRAID_INSTANTIATE(float)
BRAID_INSTANTIATE(double)
template void reduce<int64_t>(ReduceOp, const int64_t*, int64_t*, int64_t, int64_t, int64_t);
template void arg_reduce<int64_t>(bool, const int64_t*, int64_t*, int64_t, int64_t, int64_t);
#undef BRAID_INSTANTIATE

}  // namespace braid::kernels::cpu
