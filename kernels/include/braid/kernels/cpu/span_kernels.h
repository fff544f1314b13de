// CPU kernels over contiguous spans that stand in for an element-wise functor's per-element loop, keyed by the
// functor type: SpanKernel<F>::run(out, a[, b], n). The launchers of elementwise.h call one where it exists for
// the element type and every operand is contiguous, and the functor otherwise; CUDA always runs the functor.
// A span kernel exists where the functor's scalar libm calls keep the compiler from vectorising its loop.
#pragma once

#include <cstdint>

#include "braid/kernels/cpu/gelu.h"
#include "braid/kernels/functors.h"

namespace braid::kernels::cpu {

template <class F>
struct SpanKernel {};

template <>
struct SpanKernel<Gelu> {
  static void run(float* y, const float* x, int64_t n) { gelu(y, x, n); }
};
template <>
struct SpanKernel<GeluTanh> {
  static void run(float* y, const float* x, int64_t n) { gelu_tanh(y, x, n); }
};
template <>
struct SpanKernel<GeluBackward> {
  static void run(float* gx, const float* g, const float* x, int64_t n) { gelu_backward(gx, g, x, n); }
};
template <>
struct SpanKernel<GeluTanhBackward> {
  static void run(float* gx, const float* g, const float* x, int64_t n) { gelu_tanh_backward(gx, g, x, n); }
};

template <class F, class TO, class TA>
concept UnarySpanKernel = requires(TO* out, const TA* a, int64_t n) { SpanKernel<F>::run(out, a, n); };
template <class F, class T>
concept BinarySpanKernel = requires(T* out, const T* a, const T* b, int64_t n) { SpanKernel<F>::run(out, a, b, n); };

}  // namespace braid::kernels::cpu
