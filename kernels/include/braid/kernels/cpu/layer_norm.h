// Layer normalisation over the rows of a contiguous [rows, cols] block, fused: one kernel per direction instead
// of the mean, subtract, square, mean, rsqrt, multiply and add of the composed form. Forward:
// y = (x - mean) * rstd * weight + bias with rstd = 1 / sqrt(biased variance + eps), writing each row's mean and
// rstd for the backward; weight and bias may be null (no affine). Backward, from dy and what the forward saw:
// grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight and xhat = (x - mean) * rstd, and
// grad_weight = sum over rows of dy * xhat, grad_bias = sum over rows of dy; a null output is not computed.
// A row's sums run in T over the SIMD lanes (as PyTorch's kernel); the backward's column sums run in T over blocks
// of 32 rows, then in double per thread, and the threads' parts are added in thread order.
#pragma once

#include <cstdint>

namespace braid::kernels::cpu {

template <class T>
void layer_norm(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t cols,
                double eps);

template <class T>
void layer_norm_backward(const T* grad_y, const T* x, const T* weight, const T* mean, const T* rstd, T* grad_x,
                         T* grad_weight, T* grad_bias, int64_t rows, int64_t cols);

}  // namespace braid::kernels::cpu
