// GELU on float over contiguous spans, both of PyTorch's forms and their backwards, written with Eigen's packet
// math so that they vectorise: the functors of functors.h call std::erf / std::tanh once per element, which glibc
// does not vectorise. The CPU launcher reaches them through span_kernels.h; CUDA keeps the functors.
//
// The tanh form is computed as x * sigmoid(2 u) = x / (1 + exp(-2 u)), u = sqrt(2/pi) (x + 0.044715 x^3), the
// same function as 0.5 x (1 + tanh(u)) with one exp in place of tanh; its derivative uses
// 1 - tanh(u)^2 = 4 e s^2 (e = exp(-2 u), s = 1 / (1 + e)), which does not cancel where tanh(u) is near 1.
// Results stay close to the float64 formulas (tests/nn/test_gelu.cpp holds the bound; Eigen's float erf is the
// least exact part); infinities and NaN give what the functors give, and every result is independent of alignment.
// `out` may be the same array as an input.
#pragma once

#include <cstdint>

namespace braid::kernels::cpu {

void gelu(float* y, const float* x, int64_t n);
void gelu_tanh(float* y, const float* x, int64_t n);
void gelu_backward(float* grad_x, const float* grad_y, const float* x, int64_t n);
void gelu_tanh_backward(float* grad_x, const float* grad_y, const float* x, int64_t n);

}  // namespace braid::kernels::cpu
