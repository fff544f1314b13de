#include "braid/kernels/cpu/optimizer_update.h"

#include <cmath>

#include "braid/kernels/cpu/elementwise.h"

namespace braid::kernels::cpu {

namespace {

// Runs body(i) over [0, n): threaded when large, and always as a branch-free simd loop. The size test sits
// outside the pragma because `omp parallel if (false)` still costs a team start-up.
template <class Body>
void for_each_index(int64_t n, Body body) {
  if (n >= kParallelGrain && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) body(i);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) body(i);
  }
}

}  // namespace

// The SgdUpdate functor is the reference (and what CUDA runs); here each case of its branches gets its own loop
// with the coefficients in T, so the compiler vectorises it. Tests hold the two equal.
template <class T>
void sgd_update(const SgdUpdate& u, T* p, const T* g, T* buf, int64_t n) {
  const T lr = T(u.lr), wd = T(u.weight_decay), mom = T(u.momentum), keep = T(1 - u.dampening);
  if (u.momentum == 0) {
    if (u.weight_decay == 0) for_each_index(n, [=](int64_t i) { p[i] -= lr * g[i]; });
    else for_each_index(n, [=](int64_t i) { p[i] -= lr * (g[i] + wd * p[i]); });
    return;
  }
  const bool first = u.first_step, nesterov = u.nesterov;
  if (u.weight_decay == 0 && !nesterov) {
    if (first) for_each_index(n, [=](int64_t i) { buf[i] = g[i]; p[i] -= lr * g[i]; });
    else for_each_index(n, [=](int64_t i) {
      T b = mom * buf[i] + keep * g[i];
      buf[i] = b;
      p[i] -= lr * b;
    });
    return;
  }
  for_each_index(n, [=](int64_t i) {
    T d = g[i] + wd * p[i];
    T b = first ? d : mom * buf[i] + keep * d;
    buf[i] = b;
    p[i] -= lr * (nesterov ? d + mom * b : b);
  });
}

template <class T>
void adam_update(const AdamUpdate& u, T* p, const T* g, T* m, T* v, int64_t n) {
  const T b1 = T(u.beta1), b2 = T(u.beta2), eps = T(u.eps), wd = T(u.weight_decay);
  const T step = T(u.lr / u.bias_correction1), sqrt_bc2 = T(std::sqrt(u.bias_correction2));
  const T keep1 = T(1 - u.beta1), keep2 = T(1 - u.beta2);
  const T decay = T(1 - u.lr * u.weight_decay);
  const bool decoupled = u.decoupled, has_wd = u.weight_decay != 0;
  for_each_index(n, [=](int64_t i) {
    T grad = g[i];
    if (has_wd && decoupled) p[i] *= decay;
    if (has_wd && !decoupled) grad += wd * p[i];
    T mi = b1 * m[i] + keep1 * grad;
    T vi = b2 * v[i] + keep2 * grad * grad;
    m[i] = mi;
    v[i] = vi;
    p[i] -= step * mi / (std::sqrt(vi) / sqrt_bc2 + eps);
  });
}

template void sgd_update<float>(const SgdUpdate&, float*, const float*, float*, int64_t);
template void sgd_update<double>(const SgdUpdate&, double*, const double*, double*, int64_t);
template void adam_update<float>(const AdamUpdate&, float*, const float*, float*, float*, int64_t);
template void adam_update<double>(const AdamUpdate&, double*, const double*, double*, double*, int64_t);

}  // namespace braid::kernels::cpu
